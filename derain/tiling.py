"""The tile policy and seamless tiled inference: any image size, memory bounded by the tile.

:func:`parse_tile` reads a tile request (the API's ``tile=`` and the CLI's ``--tile`` alike);
:class:`TilePlan` decides, from the request and the device, which tile side runs and why, and
halves it on out-of-memory; :func:`run_tiled` runs and blends the tiles.

The whole image stays where it was given (on the device, see :mod:`derain.devicepath`); each
tile is reflect-padded to the network's size multiple, run, and blended, where the network's
output lies, into an accumulator with a weight that ramps smoothly to nearly zero over the
overlap at every inner tile edge. Dividing by the summed weights gives a partition of
unity, so neighbouring tiles cross-fade and no seam shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import DerainError

__all__ = [
    "CPU_AUTO_TILE",
    "DEFAULT_OVERLAP",
    "MIN_TILE",
    "MemoryCost",
    "TilePlan",
    "TileProgress",
    "TileRequest",
    "pad_to_multiple",
    "parse_tile",
    "run_tiled",
    "tile_grid",
    "tile_starts",
]

TileFn = Callable[[Tensor], Tensor]
#: A tile progress callback: ``progress(done, total)`` after each tile.
TileProgress = Callable[[int, int], None]
#: A tile request: a side in pixels, ``"auto"`` (from the device) or ``None`` (never tile).
TileRequest = int | Literal["auto"] | None

#: Default overlap between tiles, in pixels. At the default CPU tile (512) it costs about 14%
#: extra compute and leaves a 32 px cross-fade, wide enough to hide any tile border.
DEFAULT_OVERLAP = 32
#: The smallest tile side; below it the overlap and padding dominate the work.
MIN_TILE = 64
#: Tile side used on the CPU (and MPS) by ``tile="auto"``: near the speed optimum there, and
#: it keeps the peak memory of one tile well under a gigabyte.
CPU_AUTO_TILE = 512
#: Rough device memory a tile needs per pixel and per feature channel in half precision; the
#: estimate used where the cost cannot be measured (an ONNX Runtime session).
CUDA_BYTES_PER_PIXEL_CHANNEL = 40
#: Image-sized buffers around the network on the device, per pixel: the uint8 input (3), its
#: float copy (12), the padded copy (12), a 5-channel float output (20) and the uint8 result (3).
IMAGE_BYTES_PER_PIXEL = 50
#: Share of the free CUDA memory one run may use (the rest is headroom for the allocator).
CUDA_MEMORY_SHARE = 0.5
#: Auto tile sides on CUDA are rounded down to a multiple of this.
CUDA_TILE_STEP = 64
#: Square probe sides whose peak memory gives a network's cost per pixel (two, for a line).
PROBE_SIDES = (256, 512)


@dataclass(frozen=True)
class MemoryCost:
    """Device memory one run of the network takes: ``fixed + per_pixel × pixels`` bytes.

    Attributes:
        fixed: bytes whatever the size (workspaces, kernels' scratch).
        per_pixel: bytes per input pixel (activations), plus :data:`IMAGE_BYTES_PER_PIXEL`.
        how: ``"measured"`` or ``"estimated"``, for the plan's reason.
    """

    fixed: float
    per_pixel: float
    how: str

    def bytes_for(self, pixels: int) -> float:
        return self.fixed + self.per_pixel * pixels

    @classmethod
    def estimate(cls, channels: int) -> MemoryCost:
        """The rough cost for a network of ``channels`` features, where nothing is measured."""
        per_pixel = CUDA_BYTES_PER_PIXEL_CHANNEL * channels + IMAGE_BYTES_PER_PIXEL
        return cls(0.0, float(per_pixel), "estimated")

    @classmethod
    def measure(
        cls, forward: Callable[[Tensor], object], device: torch.device, multiple: int
    ) -> MemoryCost:
        """Peak CUDA memory of ``forward`` at the :data:`PROBE_SIDES`, as a line in pixels.

        ``forward`` runs exactly as a tile would (same precision and outputs); its input is
        allocated inside the measured window.
        """
        peaks = []
        sides = [math.ceil(side / multiple) * multiple for side in PROBE_SIDES]
        for side in sides:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            forward(torch.zeros(1, 3, side, side, device=device))
            torch.cuda.synchronize(device)
            peaks.append(torch.cuda.max_memory_allocated(device) - base)
        (small, large), (p_small, p_large) = (s * s for s in sides), peaks
        per_pixel = max(0.0, (p_large - p_small) / (large - small))
        fixed = max(0.0, p_small - per_pixel * small)
        return cls(fixed, per_pixel + IMAGE_BYTES_PER_PIXEL, "measured")


def parse_tile(value: int | str | None) -> TileRequest:
    """Read a tile request: ``"auto"``, ``None``/``"none"``, or an integer >= :data:`MIN_TILE`.

    Used by :class:`derain.Deraining` and by ``--tile``, so both accept the same values.

    Raises:
        DerainError: anything else, in one line.

    Example:
        >>> parse_tile("512"), parse_tile("auto"), parse_tile("none")
        (512, 'auto', None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("auto", "none"):
            return None if text == "none" else "auto"
        if text.isdigit():
            value = int(text)
    if isinstance(value, int) and not isinstance(value, bool) and value >= MIN_TILE:
        return value
    raise DerainError(f"tile must be 'auto', 'none' or an integer >= {MIN_TILE}, got {value!r}")


@dataclass(frozen=True)
class TilePlan:
    """Which tile side runs, and why.

    Attributes:
        tile: the side in pixels, ``None`` for whole images.
        reason: how it was chosen, for logs and ``--debug``.
    """

    tile: int | None
    reason: str

    @classmethod
    def choose(
        cls,
        request: TileRequest,
        device: torch.device,
        cost: Callable[[], MemoryCost],
        image_size: tuple[int, int] | None = None,
    ) -> TilePlan:
        """The plan for ``request`` on ``device``.

        Args:
            request: what was asked for (:func:`parse_tile`).
            device: where the network runs.
            cost: the network's :class:`MemoryCost`, asked for only on CUDA with ``"auto"``.
            image_size: (height, width) of the image about to run; without it, CUDA's auto
                plan is the largest tile that fits.
        """
        if request is None:
            return cls(None, "tiling off")
        if request != "auto":
            return cls(request, "asked for")
        if device.type != "cuda" or not torch.cuda.is_available():  # (ONNX Runtime's CUDA
            return cls(CPU_AUTO_TILE, f"auto: the {device.type} default")  # beside CPU torch)
        free, _ = torch.cuda.mem_get_info(device)
        return cls.for_memory(free, cost(), image_size)

    @classmethod
    def for_memory(
        cls, free_bytes: int, cost: MemoryCost, image_size: tuple[int, int] | None = None
    ) -> TilePlan:
        """The whole image if it fits in a share of ``free_bytes``, else the largest tile that
        does: tiles only cost time (overlap, one launch sequence each), so fewer is faster."""
        budget = CUDA_MEMORY_SHARE * free_bytes
        where = f"{free_bytes / 2**30:.1f} GiB free, cost {cost.how}"
        if image_size is not None and cost.bytes_for(image_size[0] * image_size[1]) <= budget:
            return cls(None, f"auto: the whole image fits ({where})")
        side = int((max(0.0, budget - cost.fixed) / cost.per_pixel) ** 0.5)
        side = max(MIN_TILE, side // CUDA_TILE_STEP * CUDA_TILE_STEP)
        return cls(side, f"auto: the largest tile that fits ({where})")

    def halved(self, image_side: int) -> TilePlan:
        """The plan after an out-of-memory error on an image whose longer side is given.

        Raises:
            DerainError: the tile cannot shrink below :data:`MIN_TILE`.
        """
        current = self.tile or image_side
        if current // 2 < MIN_TILE:
            raise DerainError("CUDA out of memory even at the smallest tile")
        return TilePlan(current // 2, f"halved from {current} after running out of memory")


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad the last two dims of ``x`` (B×C×H×W) at the bottom/right up to ``multiple``.

    Reflection is used where the image is large enough; for tiny images, whose side is not
    longer than the padding, it is repeated reflection, so even a 1×1 image works.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    while ph or pw:
        # reflect needs pad < size; pad in steps that respect it.
        step_h, step_w = min(ph, h - 1), min(pw, w - 1)
        if step_h == 0 and step_w == 0:  # a side of length 1: nothing to reflect
            return F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        h, w, ph, pw = h + step_h, w + step_w, ph - step_h, pw - step_w
    return x


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with at least ``overlap``."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((size - overlap) / stride)
    starts = [i * stride for i in range(count)]
    starts[-1] = size - tile  # the last tile ends at the border; it overlaps a little more
    return sorted(set(starts))


def _even_side(size: int, tile: int, overlap: int, multiple: int) -> int:
    """Tile side along one axis: as many tiles as ``tile`` needs, but shared out evenly.

    With a fixed side the last tile overlaps its neighbour by up to a whole tile (a 2048 px
    side takes five 512 px tiles, 2560 px of work); the shortest side, still a multiple of
    ``multiple``, that covers ``size`` with the same number of tiles wastes only the overlap.
    """
    if size <= tile:
        return size
    count = len(tile_starts(size, tile, overlap))
    side = math.ceil((size + (count - 1) * overlap) / count / multiple) * multiple
    return min(tile, side)


def tile_grid(
    h: int, w: int, tile: int, overlap: int, multiple: int
) -> tuple[list[int], list[int], int, int]:
    """Row starts, column starts, tile height and tile width that cover an h×w image."""
    th, tw = _even_side(h, tile, overlap, multiple), _even_side(w, tile, overlap, multiple)
    return tile_starts(h, th, overlap), tile_starts(w, tw, overlap), th, tw


def _ramp(length: int, overlap: int, fade_in: bool, fade_out: bool, device: torch.device) -> Tensor:
    w = torch.ones(length, device=device)
    n = min(overlap, length // 2)
    if n > 0:
        # raised cosine sampled at pixel centres: strictly positive, smooth, symmetric
        ramp = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(n, device=device) + 0.5) / n)
        if fade_in:
            w[:n] = ramp
        if fade_out:
            w[-n:] = ramp.flip(0)
    return w


def _run_padded(fn: TileFn, x: Tensor, multiple: int) -> Tensor:
    h, w = x.shape[-2:]
    return fn(pad_to_multiple(x, multiple))[..., :h, :w]


def run_tiled(
    fn: TileFn,
    image: Tensor,
    tile: int | None,
    overlap: int,
    multiple: int,
    progress: TileProgress | None = None,
) -> Tensor:
    """Apply ``fn`` to ``image`` (1×3×H×W), in blended tiles when it is large.

    Args:
        fn: maps a 1×3×h×w tensor (h, w multiples of ``multiple``) to 1×K×h×w float32, on
            any device; the tiles are blended on that device.
        image: the input, float32 in [0, 1], on any device (tiles are slices of it).
        tile: tile side in pixels (rounded up to ``multiple``); ``None`` runs the whole image.
        overlap: pixels shared by neighbouring tiles, blended over.
        multiple: size multiple that ``fn`` requires.
        progress: called as ``progress(done, total)`` after each tile.

    Returns:
        1×K×H×W float32 on the device of ``fn``'s output.
    """
    h, w = image.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        out = _run_padded(fn, image, multiple)
        if progress:
            progress(1, 1)
        return out
    tile = math.ceil(tile / multiple) * multiple
    overlap = max(0, min(overlap, tile // 2))
    ys, xs, th, tw = tile_grid(h, w, tile, overlap, multiple)
    acc: Tensor | None = None
    weight: Tensor | None = None
    total, done = len(ys) * len(xs), 0
    for y in ys:
        for x in xs:
            out = _run_padded(fn, image[..., y : y + th, x : x + tw], multiple)
            if acc is None or weight is None:
                acc = torch.zeros(1, out.shape[1], h, w, device=out.device)
                weight = torch.zeros(1, 1, h, w, device=out.device)
            wy = _ramp(th, overlap, y > 0, y + th < h, out.device)
            wx = _ramp(tw, overlap, x > 0, x + tw < w, out.device)
            w2d = wy[:, None] * wx[None, :]  # th×tw
            acc[..., y : y + th, x : x + tw] += out * w2d
            weight[..., y : y + th, x : x + tw] += w2d
            done += 1
            if progress:
                progress(done, total)
    assert acc is not None and weight is not None
    return acc.div_(weight)
