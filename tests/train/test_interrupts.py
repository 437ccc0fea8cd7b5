"""A Ctrl-C that Python swallowed is raised again by the training loop's next check."""

from __future__ import annotations

import contextlib
import signal

import pytest

from derain.train.interrupts import Interrupts


def _swallowed_ctrl_c() -> None:
    """What CPython does with a KeyboardInterrupt raised inside a weak-reference callback."""
    with contextlib.suppress(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_a_swallowed_ctrl_c_is_raised_at_the_next_check(ctrl_c: None) -> None:
    with Interrupts() as interrupts:
        _swallowed_ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        interrupts.check()  # raised once, then forgotten


def test_the_default_handler_is_back_afterwards(ctrl_c: None) -> None:
    with Interrupts():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_host_handler_is_left_alone(ctrl_c: None) -> None:
    seen: list[int] = []

    def host(signum: int, _frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGINT, host)
    try:
        with Interrupts() as interrupts:
            signal.raise_signal(signal.SIGINT)
            interrupts.check()  # the host took it, not us
        assert seen == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is host
    finally:
        signal.signal(signal.SIGINT, previous)
