"""Fixtures shared by the test modules."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from places import SHARED

import derain
from derain import DANet, DANetConfig

#: Not a test module: the fuzzing harness instruments Pillow when imported (run it on its own).
collect_ignore = ["hostile/fuzz_open_image.py"]

#: A random-weight network small enough to run hundreds of times in a test session.
TINY = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)


#: The validation sets in the shared data beside the checkout: validation only, never shipped.
VAL = SHARED / "data" / "val"
RAIN12 = VAL / "Rain12"


@pytest.fixture(scope="session")
def rain12() -> Path:
    """The Rain12 pairs folder; the test is skipped when ../shared is absent."""
    if not RAIN12.is_dir():
        pytest.skip("../shared/data/val/Rain12 not present")
    return RAIN12


@pytest.fixture(scope="session")
def validation_sets() -> Path:
    """The folder of the three validation sets; the test is skipped when ../shared is absent."""
    if not VAL.is_dir():
        pytest.skip("../shared/data/val not present")
    return VAL


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random-weight model, for ``--model`` and ``Deraining(path)``."""
    folder = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    derain.save_pretrained(DANet(TINY), folder)
    return folder


@pytest.fixture(scope="module")
def net(model_dir: Path) -> derain.Deraining:
    """The tiny model on the CPU, whole images (no tiles)."""
    return derain.Deraining(model_dir, device="cpu", tile=None)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the test from its own temp folder (outputs beside inputs land there)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def no_denormals() -> Iterator[None]:
    """Flush denormal floats, on one thread, for a module of random-network runs.

    A random network turns flat inputs (a constant image, a 1-pixel strip padded to 16 rows)
    into denormal floats, which a CPU computes ~30× slower (1×800 at tile 64: 24 s, not
    0.8 s). Torch flushes them on the calling thread only, so the work stays on that thread.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)  # torch's default; it has no getter to restore from
    torch.set_num_threads(threads)


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler for one test, as a terminal user's process has it.

    A suite started in the background without job control (``bash .ci/run &``) inherits
    SIGINT ignored; the handler that was there is put back afterwards.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
