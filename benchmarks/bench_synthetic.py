"""Synthetic rain per second: ``RainSynthesizer(preset).synthesize`` on 128×128 crops, one core.

Training draws one rainy crop per sample on a DataLoader worker, so this is the ceiling of one
worker. The presets take turns (``time_interleaved``), each call drawing ``--crops`` crops
from seeds 0, 1, …; ``real, look on every image`` is ``RealSpace(look_p=1.0)``, the cost of an
image that gets the real-look part.

Run: python benchmarks/bench_synthetic.py [--quick] [--crop 128] [--crops 200]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import add_common_args, save_section, setup, time_interleaved

from derain.train.synthetic import RainSynthesizer, RealSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--crops", type=int, default=None, help="per call (default 200, quick 50)")
    args = parser.parse_args()
    device = setup(args)
    crops = args.crops or (50 if args.quick else 200)
    clean = np.random.default_rng(0).random((args.crop, args.crop, 3), dtype=np.float32)
    synths = {
        "wide": RainSynthesizer("wide"),
        "real": RainSynthesizer("real"),
        "real, look on every image": RainSynthesizer(RealSpace(look_p=1.0)),
    }

    def draw(synth: RainSynthesizer) -> None:
        for seed in range(crops):
            synth.synthesize(clean, np.random.default_rng(seed))

    times = time_interleaved(
        {name: (lambda s=s: draw(s)) for name, s in synths.items()},
        warmup=1,
        runs=3 if args.quick else 5,
    )
    result: dict = {"crop": args.crop, "crops_per_call": crops, "presets": {}}
    for name, t in times.items():
        rate = round(crops / t["median_s"], 1)
        result["presets"][name] = {**t, "crops_per_s": rate}
        print(f"{name}: {rate} crops/s ({args.crop}², one process)")
    save_section(args, device, "synthetic", result)


if __name__ == "__main__":
    main()
