"""Regenerate the bundled examples: synthetic rain over a public-domain photo.

Two rainy versions: ``rocket_rain.png`` (the ``light`` preset: faint, thin streaks) and
``rocket_heavy_rain.png`` (one draw of ``wide``, the training generator: a downpour of long,
bright streaks in several layers; the seed was picked by looking at a few draws).

The photo is scikit-image's ``rocket`` (the DSCOVR launch on Falcon 9, released into the public
domain by SpaceX). Needs ``pip install scikit-image`` (only for this script).

    python examples/make_example_image.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from derain.train.synthetic import RainSynthesizer

HERE = Path(__file__).resolve().parent
EXAMPLES = {"rocket_rain.png": ("light", 2022), "rocket_heavy_rain.png": ("wide", 2025)}
"""File name -> (rain preset, seed): both are reproducible bit for bit."""


def main() -> None:
    clean = data.rocket()
    Image.fromarray(clean).save(HERE / "rocket_clean.png", optimize=True)
    clean_float = clean.astype(np.float32) / 255.0
    for name, (preset, seed) in EXAMPLES.items():
        rainy = RainSynthesizer(preset).synthesize(clean_float, np.random.default_rng(seed))
        Image.fromarray(np.rint(rainy * 255).astype(np.uint8)).save(HERE / name, optimize=True)
        print(f"wrote {HERE / name}")
    print(f"wrote {HERE / 'rocket_clean.png'}")


if __name__ == "__main__":
    main()
