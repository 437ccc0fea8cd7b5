"""Peak resident memory against image size (1, 4, 12, 24 MP), each in a fresh process.

Each size runs in its own subprocess: ``ru_maxrss`` at the end minus the resident size right
after the model is loaded. Part of the growth is unavoidable image-sized buffers (the decoded
input, the float copy, the blend accumulator, the output); the model's working set is bounded
by the tile, so the per-megapixel cost must stay flat once tiling starts.

Run: python benchmarks/bench_memory.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import Contention, add_common_args, save_section, setup

SIZES = {1: (864, 1152), 4: (1728, 2304), 12: (3000, 4000), 24: (4000, 6000)}


def rss_mb() -> float:
    """Current resident set size (VmRSS) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(model: str, device: str, h: int, w: int) -> None:
    from derain import create_model
    from derain.inference import Deraining

    derain = Deraining(create_model(model), device=device)
    baseline = rss_mb()
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    start = time.perf_counter()
    out = derain.run(image)
    seconds = time.perf_counter() - start
    assert out.shape == image.shape
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--model", default="danet")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="megapixels")
    parser.add_argument("--child", type=int, nargs=2, metavar=("H", "W"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model, args.device, *args.child)
        return
    device = setup(args)
    sizes = args.sizes or ([1, 4] if args.quick else [1, 4, 12, 24])
    rows = []
    for mp in sizes:
        h, w = SIZES.get(mp, (int((mp * 1e6 * 3 / 4) ** 0.5), int((mp * 1e6 * 4 / 3) ** 0.5)))
        cmd = [sys.executable, __file__, "--model", args.model, "--device", args.device]
        cmd += ["--child", str(h), str(w)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        with Contention() as busy:
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        data = json.loads(out.strip().splitlines()[-1])
        pixels = h * w / 1e6
        row = {
            "megapixels": round(pixels, 2),
            "size": f"{w}x{h}",
            "baseline_mb": round(data["baseline_mb"]),
            "peak_mb": round(data["peak_mb"]),
            "growth_mb": round(data["peak_mb"] - data["baseline_mb"]),
            "growth_mb_per_mp": round((data["peak_mb"] - data["baseline_mb"]) / pixels, 1),
            "seconds": round(data["seconds"], 1),
            "other_cpu_share": busy.share,
        }
        rows.append(row)
        print(row)
    save_section(args, device, "memory", {"model": args.model, "rows": rows})


if __name__ == "__main__":
    main()
