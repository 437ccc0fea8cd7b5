"""Checkpoints: a full disk while one is written keeps the one before and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY
from safetensors import SafetensorError

import derain.models.weight_files as weight_files
from derain import DANet
from derain.errors import TrainingError
from derain.train.checkpoint import load_checkpoint, save_checkpoint


def _save(path: Path, net: DANet, opt: torch.optim.Optimizer, step: int) -> None:
    save_checkpoint(path, model=net, optimizer=opt, ema=None, step=step, extra={})


def test_a_full_disk_keeps_the_last_checkpoint_and_says_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Own hunt, round four: on a real full tmpfs the run ended with ``unexpected
    SafetensorError: Error while serializing: I/O error: …``."""
    net = DANet(TINY)
    opt = torch.optim.Adam(net.parameters())
    path = tmp_path / "last.safetensors"
    _save(path, net, opt, 50)

    def full(*args: object, **kwargs: object) -> None:
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(weight_files, "save_file", full)
    with pytest.raises(TrainingError) as info:
        _save(path, net, opt, 100)
    assert str(info.value) == (
        f"{path}: cannot write (No space left on device); the checkpoint before step 100 is "
        "kept: make room, then --resume"
    )
    monkeypatch.undo()
    step, _ = load_checkpoint(path, model=DANet(TINY), optimizer=None, ema=None)
    assert step == 50 and [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]
