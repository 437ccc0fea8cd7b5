"""ONNX Runtime on CUDA through Deraining: the GPU asked for, and the one-line refusals.

A stand-in for the ``onnxruntime`` module says which providers it has, so these run on any
machine, with or without ``onnxruntime-gpu``. (The device-name mapping itself is
``tests/engines/test_devices.py``'s.)
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from derain import DerainError, Deraining, WeightsError
from derain.engines.onnx import _started_device

CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


class SessionRefused(Exception):
    """What the stand-in session raises once it has recorded its providers."""


def fake_ort(available: list[str], asked: list[Any]) -> types.ModuleType:
    module = types.ModuleType("onnxruntime")

    def session(path: str, sess_options: object, providers: list[Any]) -> None:
        asked.extend(providers)
        raise SessionRefused("stand-in")

    module.get_available_providers = lambda: available  # type: ignore[attr-defined]
    module.SessionOptions = types.SimpleNamespace  # type: ignore[attr-defined]
    module.InferenceSession = session  # type: ignore[attr-defined]
    return module


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "x.onnx"
    path.write_bytes(b"stand-in")
    return path


def test_deraining_asks_onnxruntime_for_the_gpu_it_was_given(
    monkeypatch: pytest.MonkeyPatch, model: Path
) -> None:
    asked: list[Any] = []
    monkeypatch.setitem(sys.modules, "onnxruntime", fake_ort(WITH_CUDA, asked))
    with pytest.raises(WeightsError, match="not a valid ONNX model"):
        Deraining(model, device="cuda:1")
    assert asked == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_onnxruntime_gpu_is_one_line_naming_the_file(
    monkeypatch: pytest.MonkeyPatch, model: Path, device: str
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", fake_ort(CPU_ONLY, []))
    with pytest.raises(DerainError, match=r"x\.onnx: device 'cuda.*\(install onnxruntime-gpu\)"):
        Deraining(model, device=device)


def test_a_cuda_provider_that_did_not_start_is_refused_or_dropped() -> None:
    gpu = torch.device("cuda", 0)
    assert _started_device(gpu, WITH_CUDA, "cuda", "x.onnx") == gpu
    assert _started_device(gpu, CPU_ONLY, "auto", "x.onnx") == torch.device("cpu")
    with pytest.raises(DerainError, match=r"x\.onnx: onnxruntime could not start its CUDA"):
        _started_device(gpu, CPU_ONLY, "cuda", "x.onnx")
