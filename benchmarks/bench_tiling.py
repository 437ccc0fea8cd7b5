"""Tiled throughput on a 12 MP photo, and the tiling overhead against a whole-image run.

Whole-image inference of 12 MP needs far more memory than tiling (every full-resolution
feature map is 12 MP × channels × 4 bytes), so the overhead is measured at a size where both
run (default 2048×1536).

Run: python benchmarks/bench_tiling.py [--quick] [--device cuda] [--threads N]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import add_common_args, save_section, setup, time_runs

from derain import create_model
from derain.inference import DEFAULT_OVERLAP, Deraining
from derain.tiling import tile_starts

try:  # tiles shared out evenly (since the benchmarks were added); else fixed tile sides
    from derain.tiling import _even_side
except ImportError:  # pragma: no cover

    def _even_side(size: int, tile: int, overlap: int, multiple: int) -> int:
        return min(size, tile)


def tiled_pixels(h: int, w: int, tile: int, overlap: int, multiple: int = 16) -> int:
    """Pixels the network processes for an h×w image (tiles overlap; each is tile² or less)."""
    if h <= tile and w <= tile:
        return h * w
    th, tw = _even_side(h, tile, overlap, multiple), _even_side(w, tile, overlap, multiple)
    return len(tile_starts(h, th, overlap)) * th * len(tile_starts(w, tw, overlap)) * tw


def photo(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--model", default="danet")
    parser.add_argument("--tile", type=int, default=None, help="default: Deraining's auto tile")
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    args = parser.parse_args()
    device = setup(args)
    net = create_model(args.model)
    tiled = Deraining(net, device=device, tile=args.tile or "auto", overlap=args.overlap)
    whole = Deraining(net, device=device, tile=None)
    tile = tiled.tile_size() or 512

    big = (1728, 2304) if args.quick else (3000, 4000)  # 4 MP quick, 12 MP full
    image = photo(*big)
    t_big = time_runs(lambda: tiled.run(image), device, warmup=0, runs=1)
    mp = big[0] * big[1] / 1e6
    result: dict = {
        "model": args.model,
        "tile": tile,
        "overlap": args.overlap,
        "photo": {
            "size": f"{big[1]}x{big[0]}",
            "megapixels": round(mp, 2),
            **t_big,
            "mp_per_s": round(mp / t_big["median_s"], 3),
            "compute_overhead": round(tiled_pixels(*big, tile, args.overlap) / (mp * 1e6) - 1, 3),
        },
    }
    print(f"{big[1]}x{big[0]} tiled: {t_big['median_s']:.1f} s = {mp / t_big['median_s']:.2f} MP/s")

    size = (768, 1024) if args.quick else (1536, 2048)
    image = photo(*size)
    runs = 1 if args.quick else 2
    with torch.inference_mode():
        t_whole = time_runs(lambda: whole.run(image), device, warmup=1, runs=runs)
        t_tiled = time_runs(lambda: tiled.run(image), device, warmup=0, runs=runs)
    overhead = t_tiled["median_s"] / t_whole["median_s"] - 1
    processed = tiled_pixels(*size, tile, args.overlap)
    result["overhead"] = {
        "size": f"{size[1]}x{size[0]}",
        "whole": t_whole,
        "tiled": t_tiled,
        "time_overhead": round(overhead, 3),
        "compute_overhead": round(processed / (size[0] * size[1]) - 1, 3),
    }
    print(
        f"{size[1]}x{size[0]}: whole {t_whole['median_s']:.2f} s, tiled "
        f"{t_tiled['median_s']:.2f} s -> overhead {overhead:+.1%}"
    )
    save_section(args, device, "tiling", result)


if __name__ == "__main__":
    main()
