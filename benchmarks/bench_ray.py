"""Folder throughput: the local run against Ray Data on the same CPUs, and Ray's overheads.

Writes N and 2N images of one size, then derains each folder twice over:
- local: one process, one model, torch using every core (what ``derain DIR -o OUT`` does);
- Ray: ``derain.ray_batch.derain_with_ray`` on a local Ray with ``--cpus`` CPUs, one actor per
  CPU with one torch thread each (what ``derain DIR -o OUT --ray`` does).
From the two folder sizes: marginal seconds per image (T(2N) - T(N)) / N, and the fixed cost
T(N) - N × marginal (model load, actor start-up). Ray's start (``ray.init``) is timed apart.

Run: python benchmarks/bench_ray.py [--quick] [--images 8] [--size 512x384] [--cpus 2]
Needs the ray extra (pip install -e ".[ray]"). The model has random weights (speed does not
depend on them), saved once so that every worker loads the same file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import Contention, add_common_args, save_section, setup
from PIL import Image

import derain
from derain import create_model
from derain.batch import BatchRunner, plan_jobs
from derain.io import encode_image
from derain.io.imaging import open_image
from derain.ray_batch import RaySettings


def _folder(root: Path, count: int, h: int, w: int) -> Path:
    folder = root / f"in{count}"
    folder.mkdir()
    rng = np.random.default_rng(count)
    for i in range(count):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"{i:03d}.jpg", quality=95)
    return folder


def _local(model: str, folder: Path, out: Path) -> dict:
    """What ``derain FOLDER -o OUT`` does, timed from before the model load."""
    start = time.perf_counter()
    runner = BatchRunner(RaySettings(model, "cpu").model_options().load, quality=95)
    runner.deraining()
    load = time.perf_counter() - start
    plan = plan_jobs([str(folder)], str(out), recursive=False, save_rain=False)
    for job in plan.jobs:
        runner.process(job)
    return {"wall_s": round(time.perf_counter() - start, 2), "model_load_s": round(load, 2)}


def _io_seconds(folder: Path) -> float:
    """Seconds per image to decode the input and encode a JPEG output (no deraining)."""
    files = sorted(folder.iterdir())
    start = time.perf_counter()
    for path in files:
        encode_image(open_image(path), "JPEG", 95)
    return (time.perf_counter() - start) / len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--model", default="danet")
    parser.add_argument("--images", type=int, default=None, help="N (default 8, quick 4)")
    parser.add_argument("--size", default="512x384", help="WxH of each image")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to the local Ray")
    args = parser.parse_args()
    device = setup(args)
    import ray

    from derain.ray_batch import derain_with_ray

    n = args.images or (4 if args.quick else 8)
    w, h = (int(v) for v in args.size.lower().split("x"))
    result: dict = {"model": args.model, "size": f"{w}x{h}", "images": [n, 2 * n]}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        model = str(root / "model")
        derain.save_pretrained(create_model(args.model), model, variant=args.model)
        folders = {count: _folder(root, count, h, w) for count in (n, 2 * n)}
        result["decode_encode_s_per_image"] = round(_io_seconds(folders[n]), 4)
        local, on_ray = {}, {}
        with Contention() as busy:
            for count, folder in folders.items():
                local[count] = _local(model, folder, root / f"local{count}")
                print(f"local {count} images: {local[count]}")
        result["local"] = {str(k): v for k, v in local.items()} | {"other_cpu_share": busy.share}
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="warning")
        ray.data.DataContext.get_current().enable_progress_bars = False
        result["ray_init_s"] = round(time.perf_counter() - start, 2)
        try:
            with Contention() as busy:
                for count, folder in folders.items():
                    t0 = time.perf_counter()
                    out = root / f"ray{count}"
                    report = derain_with_ray(folder, out, settings=RaySettings(model, "cpu"))
                    assert report.done == count, report.errors
                    on_ray[count] = {
                        "wall_s": round(time.perf_counter() - t0, 2),
                        "workers": report.workers,
                    }
                    print(f"ray {count} images: {on_ray[count]}")
        finally:
            ray.shutdown()
        result["ray"] = {str(k): v for k, v in on_ray.items()} | {"other_cpu_share": busy.share}
    for name, runs in (("local", local), ("ray", on_ray)):
        marginal = (runs[2 * n]["wall_s"] - runs[n]["wall_s"]) / n
        result[name]["marginal_s_per_image"] = round(marginal, 3)
        result[name]["fixed_s"] = round(runs[n]["wall_s"] - n * marginal, 2)
        result[name]["images_per_s"] = round(2 * n / runs[2 * n]["wall_s"], 3)
        result[name]["steady_images_per_s"] = round(1 / marginal, 3) if marginal > 0 else None
    result["ray_overhead_s_per_image"] = round(
        result["ray"]["marginal_s_per_image"] - result["local"]["marginal_s_per_image"], 3
    )
    print({k: result[k] for k in ("local", "ray", "ray_init_s", "ray_overhead_s_per_image")})
    save_section(args, device, "ray", result)


if __name__ == "__main__":
    main()
