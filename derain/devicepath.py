"""Pixels to the device and back, with the arithmetic around the network done on the device.

An 8-bit image crosses the bus once each way as uint8 (a quarter of float32's bytes): it is
uploaded from pinned memory without blocking, converted to float, padded, tiled, blended,
clamped and quantised where the network runs, and downloaded as uint8. On the CPU the same
functions run on CPU tensors, so both devices share one code path, and the CPU gives the same
bytes as the host path it replaced, at no extra cost (``Tensor.to`` of a CPU tensor to the CPU
is the tensor itself; a read-only array is copied as uint8, a quarter of the float copy the
host path made).

These are pure tensor functions, apart from the engine (:class:`derain.Deraining`):

- :func:`upload`: H×W×3 host pixels (uint8, or float32 in [0, 1]) -> 1×3×H×W float32 on the
  device;
- :func:`derain.tiling.run_tiled`: the network over the image, blending on the device;
- :func:`download`: 1×K×H×W float32 on the device -> H×W×K on the host, the image channels
  clamped to [0, 1] and, for 8-bit inputs, quantised to uint8 on the device.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import DerainError, DerainWarning

__all__ = ["FAST_MODES", "FixedShapeForward", "download", "quantize", "upload"]

#: The largest 8-bit value: uint8 pixels are divided by it going up, multiplied coming back.
UINT8_MAX = 255


def upload(pixels: np.ndarray, device: torch.device) -> Tensor:
    """H×W×3 host pixels as a 1×3×H×W float32 tensor in [0, 1] on ``device``.

    Args:
        pixels: uint8 (0..255) or float32 in [0, 1], H×W×3. Never written to.
        device: where the network runs; on CUDA the copy goes from pinned memory without
            blocking the host.
    """
    if not pixels.flags.writeable:  # PIL's np.asarray: torch warns about sharing it
        pixels = pixels.copy()
    host = torch.from_numpy(pixels)
    if device.type == "cuda":
        host = host.pin_memory()
    x = host.to(device, non_blocking=True).permute(2, 0, 1)[None]
    if x.dtype == torch.uint8:
        return x.float().div_(UINT8_MAX)
    return x.float()


def quantize(x: Tensor) -> Tensor:
    """Float values in [0, 1] to uint8, rounded half to even like ``numpy.rint``."""
    return x.clamp(0.0, 1.0).mul_(UINT8_MAX).round_().to(torch.uint8)


def download(out: Tensor, as_uint8: bool) -> np.ndarray:
    """1×K×H×W float32 network output on any device as an H×W×K host array.

    The first three channels (the image) are clamped to [0, 1]; the others (rain layer, mask)
    are left as they are. With ``as_uint8`` the image alone (K = 3) comes back as uint8, the
    quantisation done on the device, so a quarter of the bytes cross the bus.
    """
    if as_uint8:
        if out.shape[1] != 3:
            raise ValueError(f"only the 3 image channels quantise to uint8, not {out.shape[1]}")
        out = quantize(out)
    else:
        out[:, :3].clamp_(0.0, 1.0)
    return out[0].permute(1, 2, 0).contiguous().cpu().numpy()


#: ``Deraining.compile`` modes: ``"compile"`` (kernels fused by ``torch.compile``) and
#: ``"graphs"`` (the same, replayed as CUDA graphs: ``mode="reduce-overhead"``).
FAST_MODES = {"compile": "default", "graphs": "reduce-overhead"}


class FixedShapeForward:
    """The network compiled for the input shapes it meets, with the eager network as fallback.

    Worth it where the same shape comes back many times (video frames, a folder of same-size
    photos, fixed tiles): a shape runs eagerly the first time and compiles the second time it
    comes (a one-off shape never pays for compiling), later calls run the compiled code. Any
    failure (no compiler for this platform, a graph break the backend refuses) warns once and
    falls back to the eager network for good, so opting in never breaks a run.
    """

    def __init__(self, net: torch.nn.Module, mode: str) -> None:
        if mode not in FAST_MODES:
            raise DerainError(f"unknown fast path {mode!r}; use {' or '.join(FAST_MODES)}")
        self.net, self.mode = net, mode
        self.compiled: Any = torch.compile(net, mode=FAST_MODES[mode], dynamic=False)
        #: Why the fast path was given up (``None`` while it runs).
        self.failed: str | None = None
        self._seen: set[tuple[int, ...]] = set()

    def __call__(self, x: Tensor) -> Any:
        shape = tuple(x.shape)
        if shape not in self._seen:
            self._seen.add(shape)
        elif self.failed is None:
            try:
                return self.compiled(x)
            except Exception as exc:  # a backend's own errors: fall back, never fail the run
                first = (str(exc).strip().splitlines() or [""])[0]
                self.failed = f"{type(exc).__name__}: {first}"
                warnings.warn(
                    f"torch.compile ({self.mode}) failed, running eagerly: {self.failed}",
                    DerainWarning,
                    stacklevel=2,
                )
        return self.net(x)
