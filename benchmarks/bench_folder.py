"""Folder throughput of the CLI (``derain run DIR -o OUT``) on mixed-size JPEGs, and CPU use.

Random weights are saved to a temporary folder and passed with ``--model``; the wall time
includes process start and model load, which is reported separately (a one-pixel run).
CPU utilisation = child CPU time / wall time / cores: 1.0 means every core was busy all along.

Run: python benchmarks/bench_folder.py [--quick] [--device cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import Contention, add_common_args, physical_cores, save_section, setup
from PIL import Image

from derain import create_model
from derain.weights import save_pretrained

SIZES = [(640, 480), (1024, 768), (1280, 960), (800, 600), (1920, 1080), (512, 512)]
SIZES += [(1600, 1200), (2048, 1536)]


def make_images(folder: Path, sizes: list[tuple[int, int]]) -> float:
    """Write smooth-plus-noise JPEGs (realistic to decode/encode); return their megapixels."""
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(x / 50 + i), np.cos(y / 40), np.sin((x + y) / 70)], axis=2)
        img = (base * 60 + 128 + rng.normal(0, 12, (h, w, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:02d}_{w}x{h}.jpg", quality=92)
    return sum(w * h for w, h in sizes) / 1e6


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``derain`` with ``args``; return (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "derain", *args]  # the same as the `derain` entry point
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def decode_encode_seconds(folder: Path, out: Path) -> float:
    """Time to decode every image to RGB and encode it again as JPEG, with no model."""
    start = time.perf_counter()
    for path in sorted(folder.iterdir()):
        with Image.open(path) as im:
            im.convert("RGB").save(out / path.name, quality=95)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--model", default="danet")
    args = parser.parse_args()
    device = setup(args)
    sizes = SIZES[:4] if args.quick else SIZES
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    root = Path(tempfile.mkdtemp(prefix="derain-bench-"))
    try:
        src, out, weights, tiny = root / "in", root / "out", root / "weights", root / "tiny"
        for folder in (src, out, tiny):
            folder.mkdir()
        megapixels = make_images(src, sizes)
        save_pretrained(create_model(args.model), weights, variant=args.model)
        Image.new("RGB", (16, 16)).save(tiny / "tiny.png")
        common = ["--model", str(weights), "--device", args.device, "--quiet", "--overwrite"]
        startup, _ = run_cli(["run", str(tiny), "-o", str(out / "tiny"), *common], env)
        with Contention() as busy:
            wall, cpu = run_cli(["run", str(src), "-o", str(out / "run"), *common], env)
        codec_out = out / "codec"
        codec_out.mkdir()
        codec = decode_encode_seconds(src, codec_out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cores = physical_cores()
    result = {
        "model": args.model,
        "images": len(sizes),
        "megapixels": round(megapixels, 2),
        "sizes": [f"{w}x{h}" for w, h in sizes],
        "wall_s": round(wall, 2),
        "startup_s": round(startup, 2),
        "images_per_s": round(len(sizes) / wall, 3),
        "images_per_s_after_startup": round(len(sizes) / (wall - startup), 3),
        "mp_per_s_after_startup": round(megapixels / (wall - startup), 3),
        "cpu_s": round(cpu, 2),
        "cpu_utilisation": round(cpu / wall / cores, 3),
        "decode_encode_s": round(codec, 2),
        "other_cpu_share": busy.share,
    }
    print(result)
    save_section(args, device, "folder", result)


if __name__ == "__main__":
    main()
