"""Device names: ``cuda:N`` means GPU N for PyTorch and for ONNX Runtime alike."""

from __future__ import annotations

import pytest
import torch

from derain import DANet, DANetConfig, DerainError, Deraining
from derain.engines.devices import CPU_PROVIDER, CUDA_PROVIDER, onnx_providers, resolve_device

TINY = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)
WITH_CUDA = [CUDA_PROVIDER, CPU_PROVIDER]


def test_onnx_cuda_n_runs_on_gpu_n() -> None:
    providers, device = onnx_providers(WITH_CUDA, "cuda:1")
    assert providers == [(CUDA_PROVIDER, {"device_id": 1}), CPU_PROVIDER]
    assert device == torch.device("cuda:1")
    providers, device = onnx_providers(WITH_CUDA, "cuda")
    assert providers[0] == (CUDA_PROVIDER, {"device_id": 0}) and device == torch.device("cuda")


def test_onnx_auto_and_cpu() -> None:
    assert onnx_providers([CPU_PROVIDER], "auto") == ([CPU_PROVIDER], torch.device("cpu"))
    assert onnx_providers(WITH_CUDA, "cpu") == ([CPU_PROVIDER], torch.device("cpu"))
    assert onnx_providers(WITH_CUDA, "auto")[1].type == "cuda"


@pytest.mark.parametrize(
    ("available", "device", "message"),
    [
        ([CPU_PROVIDER], "cuda:0", "no CUDA provider"),
        (WITH_CUDA, "mps", "unsupported device 'mps' for ONNX"),
        (WITH_CUDA, "gpu", "unknown device 'gpu'"),
    ],
)
def test_onnx_bad_devices(available: list[str], device: str, message: str) -> None:
    with pytest.raises(DerainError, match=message):
        onnx_providers(available, device)


def test_torch_devices_are_checked() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DerainError, match="unknown device"):
        resolve_device("gpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(DerainError, match=r"CUDA is not available|GPU\(s\) exist"):
        resolve_device(f"cuda:{count}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_n_is_honoured_by_deraining() -> None:
    last = torch.cuda.device_count() - 1
    deraining = Deraining(DANet(TINY), device=f"cuda:{last}", tile=None)
    assert deraining.device == torch.device("cuda", last)
    assert next(deraining.model.parameters()).device == torch.device("cuda", last)
    assert deraining.run(torch.rand(3, 32, 32)).device == torch.device("cpu")
