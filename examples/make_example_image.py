"""Regenerate the bundled example: synthetic rain over a public-domain photo.

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
SEED = 2022


def main() -> None:
    clean = data.rocket()
    rainy = RainSynthesizer("light").synthesize(
        clean.astype(np.float32) / 255.0, np.random.default_rng(SEED)
    )
    Image.fromarray(clean).save(HERE / "rocket_clean.png", optimize=True)
    Image.fromarray(np.rint(rainy * 255).astype(np.uint8)).save(
        HERE / "rocket_rain.png", optimize=True
    )
    print(f"wrote {HERE / 'rocket_rain.png'} and {HERE / 'rocket_clean.png'}")


if __name__ == "__main__":
    main()
