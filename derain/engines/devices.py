"""Where a model runs: device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) turned
into devices that exist, for PyTorch and for ONNX Runtime's execution providers.

Every engine resolves its device here, so ``cuda:N`` means GPU N everywhere.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import DerainError

__all__ = ["ProviderList", "check_device_name", "onnx_providers", "resolve_device"]

_NAMES = "auto, cpu, cuda, cuda:N or mps"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
#: ONNX Runtime's ``providers=`` argument: names, or (name, options) pairs.
ProviderList = list[str | tuple[str, dict[str, Any]]]


#: The kinds of device a name may give (besides ``auto``).
DEVICE_KINDS = ("cpu", "cuda", "mps")


def _parse(text: str) -> torch.device:
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise DerainError(f"unknown device {text!r}; use {_NAMES}") from None
    if dev.type not in DEVICE_KINDS:
        raise DerainError(f"unsupported device {text!r}; use {_NAMES}")
    return dev


def check_device_name(device: str) -> None:
    """Check only how a device is spelt (``cuda:x`` is refused; ``cuda`` on a machine without
    CUDA is not: :func:`resolve_device` finds that).

    Raises:
        DerainError: not ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    """
    if device != "auto":
        _parse(device)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` into a torch device that really exists.

    Raises:
        DerainError: a device that was asked for by name but is not available.
    """
    text = str(device)
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = _parse(text)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DerainError(f"device {text!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DerainError(
                f"device {text!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DerainError(f"device {text!r} requested but MPS is not available")
    return dev


def onnx_providers(
    available: list[str], device: str | torch.device
) -> tuple[ProviderList, torch.device]:
    """ONNX Runtime's execution providers for a device name, and the device they run on.

    Args:
        available: ``onnxruntime.get_available_providers()``.
        device: ``auto`` (CUDA when this onnxruntime has it), ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        The ``providers=`` list (CUDA on GPU N first, the CPU as fallback) and the torch
        device the outputs are on.

    Raises:
        DerainError: CUDA asked for but this onnxruntime has none, or an unknown device.
    """
    text = str(device)
    has_cuda = CUDA_PROVIDER in available
    cpu_only: ProviderList = [CPU_PROVIDER]
    if text == "cpu" or (text == "auto" and not has_cuda):
        return cpu_only, torch.device("cpu")
    try:
        dev = torch.device("cuda" if text == "auto" else text)
    except RuntimeError:
        raise DerainError(f"unknown device {text!r}; use {_NAMES}") from None
    if dev.type != "cuda":
        raise DerainError(f"unsupported device {text!r} for ONNX models; use auto, cpu or cuda[:N]")
    if not has_cuda:
        raise DerainError(
            f"device {text!r} requested but this onnxruntime has no CUDA provider "
            "(install onnxruntime-gpu)"
        )
    cuda = (CUDA_PROVIDER, {"device_id": dev.index or 0})
    return [cuda, CPU_PROVIDER], dev
