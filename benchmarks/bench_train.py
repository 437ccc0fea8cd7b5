"""Training throughput in crops/s: the data path alone, and the whole step (data + model).

Two data paths, both making ``wide`` synthetic pairs from the same photos:

- ``host``: what the DataLoader workers run (``SyntheticCrops``: NumPy rain, one crop at a
  time), here in this process, then copied to the device;
- ``device``: ``DeviceBatches`` (photos cached on the device, crops and batched PyTorch
  rain drawn there);
- ``none``: one fixed random batch, so the step alone is timed (what this script measured
  before the data paths were added).

The step is the trainer's own ``OptimStep`` (channels_last input, DANetLoss, Adam, fused on
CUDA; bf16 autocast on CUDA and on CPUs with native bf16) plus the foreach EMA update. The
whole step is the data path of one batch followed by one step, timed together (synchronised
on CUDA), so on the host path it is what a loop without workers would see.

On CUDA each step's host waits are counted too (``torch.cuda.set_sync_debug_mode``).

Photos: ``--data`` (default ../shared/data/clean, the first ``--photos`` of them); without
it, generated textured images.

Run: python benchmarks/bench_train.py [--quick] [--device cuda] [--models danet danet-plus]
     [--batch 8] [--paths none host device] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import add_common_args, save_section, setup, time_runs
from PIL import Image

from derain import create_model
from derain.io import iter_images
from derain.train.data import DeviceBatches, StepSampler, SyntheticCrops
from derain.train.losses import DANetLoss
from derain.train.trainer import OptimStep, _ema_update

SHARED_CLEAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "clean"
EMA_DECAY = 0.999


def _photos(folder: Path | None, count: int, tmp: Path) -> list[Path]:
    if folder is not None and folder.is_dir():
        return sorted(iter_images(folder, recursive=True))[:count]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        y, x = np.mgrid[0:384, 0:512] / 512
        image = np.stack([x, y, 1 - x * y], 2) * 200 + rng.integers(0, 50, (384, 512, 3))
        paths.append(tmp / f"{i}.png")
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(paths[-1])
    return paths


class _HostBatches:
    """The host path's batches, one after another, copied to the device."""

    def __init__(self, dataset: SyntheticCrops, sampler: StepSampler, device: torch.device):
        self.dataset, self.device = dataset, device
        self.keys = iter(sampler)

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.dataset[key] for key in next(self.keys)]
        rainy, clean = (
            torch.stack(t).to(self.device, non_blocking=True) for t in zip(*pairs, strict=True)
        )
        return rainy, clean


class _Fixed:
    """No data path: the same random batch every time (the compute ceiling of the loop)."""

    def __init__(self, batch: int, crop: int, device: torch.device):
        shape = (batch, 3, crop, crop)
        self.pair = (torch.rand(shape, device=device), torch.rand(shape, device=device))

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pair


def _source(path: str, dataset: SyntheticCrops, batch: int, device: torch.device):
    if path == "none":
        return _Fixed(batch, dataset.crop, device)
    sampler = StepSampler(len(dataset), batch, total_steps=10**9, seed=0)
    if path == "host":
        for key in [(0, i) for i in range(len(dataset))]:
            dataset[key]  # decode and cache every photo first (the workers cache too)
        return _HostBatches(dataset, sampler, device)
    return iter(DeviceBatches(dataset, sampler, device))


def _syncs(step: Callable[[], None], steps: int) -> float:
    """Host waits per step that CUDA's sync debug mode reports (0 for a loop that never
    waits for the device)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return len(caught) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--models", nargs="+", default=None, help="default: danet, danet-plus")
    parser.add_argument("--paths", nargs="+", default=["none", "host", "device"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5, quick 2)")
    parser.add_argument("--data", type=Path, default=SHARED_CLEAN)
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = parser.parse_args()
    device = setup(args)
    models = args.models or (["danet"] if args.quick else ["danet", "danet-plus"])
    steps = args.steps or (2 if args.quick else 5)
    result: dict = {"batch": args.batch, "crop": args.crop, "preset": "wide", "data": {}}
    result["compile"] = args.compile
    result["models"] = {m: {} for m in models}
    with tempfile.TemporaryDirectory() as tmp:
        paths = _photos(args.data, args.photos, Path(tmp))
        result["photos"] = len(paths)
        for path in args.paths:
            dataset = SyntheticCrops(paths, args.crop, "wide", seed=0)
            source = _source(path, dataset, args.batch, device)
            if path != "none":
                t = time_runs(lambda source=source: next(source), device, warmup=1, runs=steps)
                rate = args.batch / t["median_s"]
                result["data"][path] = {**t, "crops_per_s": round(rate, 1)}
                print(f"data {path}: {rate:.1f} crops/s ({t['median_s']:.3f} s/batch)")
            for name in models:
                torch.manual_seed(0)
                model = create_model(name).to(device, memory_format=torch.channels_last).train()
                ema = copy.deepcopy(model).requires_grad_(False)
                params, ema_params = tuple(model.parameters()), tuple(ema.parameters())
                fused = True if device.type == "cuda" else None
                optimizer = torch.optim.Adam(params, lr=1e-4, fused=fused)
                net = torch.compile(model) if args.compile else model
                stepper = OptimStep(net, optimizer, DANetLoss(), device)

                def step(stepper=stepper, source=source, params=params, ema=ema_params) -> None:
                    rainy, clean = next(source)
                    stepper(rainy.contiguous(memory_format=torch.channels_last), clean)
                    _ema_update(ema, params, EMA_DECAY, 1000)

                t = time_runs(step, device, warmup=1, runs=steps)
                rate = args.batch / t["median_s"]
                result["models"][name][path] = {**t, "crops_per_s": round(rate, 1)}
                if device.type == "cuda":
                    result["models"][name][path]["syncs_per_step"] = _syncs(step, steps)
                print(f"step {name} ({path} data): {t['median_s']:.2f} s/step = {rate:.1f} crops/s")
    save_section(args, device, "train", result)


if __name__ == "__main__":
    main()
