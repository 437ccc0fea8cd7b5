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

import numpy as np
import torch
from torch import Tensor

__all__ = ["download", "quantize", "upload"]

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
