"""Draw docs/rain_real.jpg: clean | ``wide`` | ``real`` | real-look part alone, our rain only.

The crops come from the bundled public-domain photo (examples/rocket_clean.png, a launch pad
at dusk with lamps) and from a scene drawn here (bright sky over dark foliage and a grey
road), so no third-party photo is redistributed. The ``real`` column forces the real-look
part on (``RealSpace(look_p=1.0)``; the preset itself adds it to half the images). Both rainy
columns start from the same generator state, so ``real`` is the ``wide`` rain of its row plus
the real-look rain; the last column is that real-look rain alone (the same draws, with the
``wide`` streaks made invisible and its veil off).

    PYTHONPATH=. python tools/rain_real_figure.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from derain.train.synthetic import RainSpace, RealSpace, preview_grid

ROOT = Path(__file__).resolve().parent.parent
SEED = 7
"""Seed of the crops and the rain (the first one tried)."""


def sky_over_trees(size: int = 200, seed: int = 0) -> np.ndarray:
    """A uint8 scene: bright sky, a wavy band of dark foliage, a grey road at the bottom."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    sky = np.stack([0.78 + 0.1 * y, 0.82 + 0.08 * y, 0.9 + 0.05 * y], axis=-1)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    noise = rng.standard_normal((size, size))
    leaves = np.fft.irfft2(np.fft.rfft2(noise) * np.exp(-(fx**2 + fy**2) * 400), s=noise.shape)
    leaves = (leaves - leaves.min()) / (leaves.max() - leaves.min())
    foliage = np.stack([0.05 + 0.15 * leaves, 0.1 + 0.2 * leaves, 0.04 + 0.1 * leaves], axis=-1)
    scene = np.where((y > 0.35 + 0.12 * np.sin(x * 7))[..., None], foliage, sky)
    scene = np.where((y > 0.8)[..., None], 0.4, scene)
    return np.round(scene * 255).astype(np.uint8)


def main() -> None:
    images = [ROOT / "examples" / "rocket_clean.png", sky_over_trees()]
    out = ROOT / "docs" / "rain_real.jpg"
    real = RealSpace(look_p=1.0)
    alone = RealSpace(look_p=1.0, base=RainSpace(intensity=(1e-9, 1e-9), veil=(0.0, 0.0)))
    preview_grid(images, ["wide", real, alone], seed=SEED, out_path=out, n=4, crop=192)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
