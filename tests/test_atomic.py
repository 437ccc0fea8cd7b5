"""Atomic writes: complete or absent, and errors name the file asked for."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from derain.atomic import atomic_write


def test_a_failed_write_names_the_target_not_the_hidden_temp(tmp_path: Path) -> None:
    """Own hunt, round four: a full disk during a video write said
    ``.clean.mp4.1234.ab12cd34.tmp: No space left on device``."""
    target = tmp_path / "clean.mp4"

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    with pytest.raises(OSError) as info:
        atomic_write(target, write)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_other_errors_pass_through_unchanged(tmp_path: Path) -> None:
    def write(tmp: Path) -> None:
        raise FileNotFoundError(errno.ENOENT, "gone", "/elsewhere/x")

    with pytest.raises(FileNotFoundError) as info:
        atomic_write(tmp_path / "x.png", write)
    assert info.value.filename == "/elsewhere/x"
