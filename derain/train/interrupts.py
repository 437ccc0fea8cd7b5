"""Ctrl-C that is never lost: a SIGINT remembered until the training loop can act on it.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens to
be. Where that is a callback whose exceptions CPython only prints (a weak-reference callback,
such as the one that drops an import's module lock, a ``__del__``, a garbage-collector hook),
the interrupt is printed as "Exception ignored in …" and the program runs on: training went
on to the end and exited 0. :class:`Interrupts` keeps a flag that the signal sets, so the loop
raises the interrupt itself at its next step if the first one was swallowed.

Example:
    >>> with Interrupts() as interrupts:
    ...     interrupts.check()  # nothing pending: returns
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

__all__ = ["Interrupts"]


class Interrupts:
    """A context that notes every SIGINT; :meth:`check` raises one still pending.

    The handler raises ``KeyboardInterrupt`` at once, as Python's own does, so Ctrl-C stops
    work as fast as before; the flag is what survives a swallowed one. The handler is only
    installed on the main thread and only over Python's default one (a host that set its own,
    such as a notebook or a job runner, keeps it), and Python's is put back on exit.
    """

    def __init__(self) -> None:
        self.pending = False
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True
        raise KeyboardInterrupt

    def __enter__(self) -> Interrupts:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if a SIGINT came and was not acted on."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False
