"""Training steps per second (batch 16, 128×128 crops): the trainer's model + loss + Adam step.

The step is the trainer's own ``derain.train.trainer.OptimStep`` (channels_last input,
DANetLoss, Adam; fp16/bf16 autocast on CUDA); data loading is left out (random tensors), so
this is the compute ceiling of the loop.

Run: python benchmarks/bench_train.py [--quick] [--device cuda] [--models danet danet-plus]
"""

from __future__ import annotations

import argparse

import torch
from _common import add_common_args, save_section, setup, time_runs

from derain import create_model
from derain.train.losses import DANetLoss
from derain.train.trainer import OptimStep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--models", nargs="+", default=None, help="default: danet, danet-plus")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5, quick 2)")
    args = parser.parse_args()
    device = setup(args)
    models = args.models or (["danet"] if args.quick else ["danet", "danet-plus"])
    steps = args.steps or (2 if args.quick else 5)
    result: dict = {"batch": args.batch, "crop": args.crop, "models": {}}
    for name in models:
        torch.manual_seed(0)
        model = create_model(name).to(device, memory_format=torch.channels_last).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        stepper = OptimStep(model, optimizer, DANetLoss(), device)
        shape = (args.batch, 3, args.crop, args.crop)
        rainy = torch.rand(shape, device=device).contiguous(memory_format=torch.channels_last)
        clean = torch.rand(shape, device=device)

        def step(stepper=stepper, rainy=rainy, clean=clean) -> None:
            stepper(rainy, clean)

        t = time_runs(step, device, warmup=1, runs=steps)
        result["models"][name] = {**t, "steps_per_s": round(1 / t["median_s"], 3)}
        print(f"{name}: {t['median_s']:.2f} s/step = {1 / t['median_s']:.3f} steps/s")
    save_section(args, device, "train", result)


if __name__ == "__main__":
    main()
