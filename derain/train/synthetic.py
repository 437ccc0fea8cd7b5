"""Synthetic rain over clean photos.

The training default is ``wide`` (:class:`RainSpace`): every image draws its own rain from wide
ranges taken from the published synthesis recipes and from looking at real rain, covering
drizzle to downpours. No validation set was measured to choose them.

The older ``light`` preset (kept bit-reproducible, no longer used for training) was fitted to
statistics of Rain12's rain layers, which the project no longer allows for training data: a
model trained on it has, in effect, seen Rain12's rain. What those measurements said:

What the real rain looks like (residual rainy − clean of the 12 Rain12 pairs, 481×321, [0, 1]):

- Purely additive and colourless: the residual is never negative, equal on R, G and B, and its
  mean does not depend on the background brightness (≈0.02 from black to 0.9), so it is added
  and clipped, not screen-blended. No veil: the median residual is 0.000–0.012.
- Mean residual 0.007–0.035 (mean 0.018); 3–27 % of pixels brighter by > 0.05, 0–1.6 % by
  > 0.2; a streak's peak is ≈0.10 (median) to 0.20 (90th pct), the brightest pixels reach 0.35.
- Thin streaks: area / length ≈ 1.5 px (90th pct 3 px), horizontal autocorrelation half-width
  1–2 px. Lengths of thresholded streaks: median 10–12 px, 90th pct 22–36 px.
- One dominant direction per image, 0–24° from vertical, spread (IQR) 4–8° within an image,
  up to 19° where two layers cross; ≈200–700 streak pieces per 100 k pixels.
- Rain12's rainy inputs score 30.14 dB / 0.855 against their ground truth.

The real photos in the shared data add what Rain12 lacks: dense, long, dim streaks and a
whitish veil in heavy rain; the "heavy" preset covers those.

Presets on 50 random 481×321 crops of the clean photos, same protocol: "light" 29.6 dB / 0.859
(10th–90th pct 27.4–32.4 dB), mean residual 0.017, 13.7 % of pixels > 0.05 (Rain12: 30.14 dB /
0.855, 0.018, 13.3 %); "heavy" 14.9 dB / 0.54 with a veil; "mix" spans both.

Model: a few depth layers of parallel streaks. Each layer is sparse random seeds convolved with
a motion-blur segment (length, angle) and a Gaussian (width, defocus), done in the Fourier
domain so the cost does not depend on how many streaks there are. Far layers are shorter,
thinner, dimmer and denser; near layers longer, brighter and blurrier. The scene first gets a
veil I = J·t + A·(1 − t), then the rain is added and the result clipped to [0, 1].

Example:
    >>> import numpy as np
    >>> synth = RainSynthesizer("light")
    >>> clean = np.full((64, 64, 3), 0.4, dtype=np.float32)
    >>> rainy = synth.synthesize(clean, np.random.default_rng(0))
    >>> rainy.shape, rainy.dtype, bool(rainy.mean() > clean.mean())
    ((64, 64, 3), dtype('float32'), True)
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from derain.errors import ImageError
from derain.imaging import ImageInput, rgb8
from derain.io_files import write_image_atomic

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "RainMix",
    "RainParams",
    "RainSpace",
    "RainSynthesizer",
    "preset",
    "preview_grid",
]

Range = tuple[float, float]


@dataclass(frozen=True)
class RainParams:
    """Ranges the rain of one image is drawn from; each (lo, hi) is sampled per image.

    Per-layer quantities (``length``, ``width``, ``intensity``) are drawn low for far layers
    and high for near ones, so depth stays consistent while every sample differs.

    Attributes:
        density: streak seeds per pixel, summed over layers.
        layers: (min, max) number of depth layers.
        length: streak length in pixels (far → near).
        width: Gaussian σ across a streak in pixels (far → near).
        intensity: brightness added at a streak's core, in [0, 1] units (far → near).
        intensity_jitter: per-streak brightness factor is drawn from [jitter, 1].
        angle: range of the image's mean angle from vertical, degrees (sign is left/right).
        angle_spread: std of each layer's angle around the image's, degrees.
        defocus: extra Gaussian σ of the nearest layer in pixels (grows with nearness²).
        veil: haze strength 1 − t of I = J·t + A·(1 − t).
        airlight: brightness A of the veil.
        screen: probability that the streaks are screen-blended, 1 − (1 − I)(1 − S), as in
            the Photoshop recipe, instead of added and clipped.
        jpeg: probability that the rainy image is JPEG-compressed, as real photos are.
        jpeg_quality: (min, max) JPEG quality of that compression.

    Example:
        >>> p = RainParams(density=(0.01, 0.02))
        >>> p.density
        (0.01, 0.02)
    """

    density: Range = (0.005, 0.016)
    layers: tuple[int, int] = (2, 3)
    length: Range = (3.5, 22.0)
    width: Range = (0.35, 0.6)
    intensity: Range = (0.07, 0.2)
    intensity_jitter: float = 0.4
    angle: Range = (-25.0, 25.0)
    angle_spread: float = 4.0
    defocus: Range = (0.0, 0.4)
    veil: Range = (0.0, 0.0)
    airlight: Range = (0.75, 0.95)
    screen: float = 0.0
    jpeg: float = 0.0
    jpeg_quality: tuple[int, int] = (60, 95)


@dataclass(frozen=True)
class RainMix:
    """Per image, rain from ``low``, from ``high`` or from a random blend of the two.

    Each of the three cases has probability 1/3; the blend interpolates every range.

    Example:
        >>> mix = RainMix(PRESETS["light"], PRESETS["heavy"])
        >>> isinstance(mix.sample(np.random.default_rng(0)), RainParams)
        True
    """

    low: RainParams
    high: RainParams

    def sample(self, rng: np.random.Generator) -> RainParams:
        """Draw the parameters of one image."""
        case = rng.integers(3)
        u = (0.0, 1.0, rng.random())[case]
        return _lerp_params(self.low, self.high, float(u))


FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
"""Full width at half maximum of a Gaussian, in units of its σ (≈ 2.355)."""
MIN_ASPECT = 4.0
"""Shortest streak of :class:`RainSpace`, in widths (FWHM)."""


def _log_uniform(r: Range, rng: np.random.Generator) -> float:
    return math.exp(rng.uniform(math.log(r[0]), math.log(r[1])))


@dataclass(frozen=True)
class RainSpace:
    """Domain randomisation: every image draws its own rain from wide ranges.

    Each image gets one fixed :class:`RainParams` drawn here: how much of the image the
    streaks cover (sparse drizzle to a curtain of overlapping streaks), the nearest layer's
    length, width and brightness (far layers shorter, thinner and dimmer by a random
    factor), one to several layers with their own angles, additive or screen blending, now
    and then a veil, and often JPEG compression of the rainy input.

    No range here was fitted to a validation set (unlike ``light``, whose statistics were
    measured on Rain12's rain layers): they come from the published synthesis recipes and
    from looking at real rain, so all three validation sets stay unseen.

    Scale-like ranges (coverage, length, width, brightness) are drawn log-uniformly, so short
    and long, thin and thick, faint and bright are equally common (a uniform brightness made
    faint rain, the commonest in photos, rare).

    Attributes:
        coverage: fraction of the image the streaks would cover if they did not overlap.
        layers: (min, max) number of depth layers.
        length: length of the nearest layer's streaks in pixels.
        far_ratio: far layers' length, width and brightness as a fraction of the nearest's.
        width: Gaussian σ across the nearest layer's streaks in pixels (≈ 1–6 px wide).
        intensity: brightness of the nearest layer's streaks, up to nearly opaque.
        angle: the image's mean angle from vertical, degrees; ``wide_angle`` with
            probability ``wide_angle_p`` (wind).
        angle_spread: std of each layer's angle around the image's, degrees.
        defocus: extra blur of the nearest layer in pixels.
        screen: probability of screen blending rather than addition.
        veil_p, veil: probability of a veil, and its strength when there is one.
        jpeg, jpeg_quality: probability and quality range of JPEG compression.

    Example:
        >>> p = PRESETS["wide"].sample(np.random.default_rng(3))
        >>> isinstance(p, RainParams)
        True
    """

    coverage: Range = (0.03, 2.0)
    layers: tuple[int, int] = (1, 5)
    length: Range = (5.0, 160.0)
    far_ratio: Range = (0.3, 1.0)
    width: Range = (0.35, 2.5)
    intensity: Range = (0.05, 0.9)
    angle: Range = (-30.0, 30.0)
    wide_angle: Range = (-60.0, 60.0)
    wide_angle_p: float = 0.1
    angle_spread: Range = (0.0, 12.0)
    defocus: Range = (0.0, 2.0)
    screen: float = 0.5
    veil_p: float = 0.15
    veil: Range = (0.05, 0.35)
    airlight: Range = (0.7, 0.98)
    jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (50, 95)

    def sample(self, rng: np.random.Generator) -> RainParams:
        """Draw the parameters of one image."""
        length = _log_uniform(self.length, rng)
        sigma = _log_uniform(self.width, rng)
        # A streak is long and thin: at least MIN_ASPECT times as long as it is wide (FWHM),
        # or it reads as a blob or a snowflake, not rain.
        length = max(length, MIN_ASPECT * FWHM_PER_SIGMA * sigma)
        intensity = _log_uniform(self.intensity, rng)
        far = [float(rng.uniform(*self.far_ratio)) for _ in range(3)]
        coverage = _log_uniform(self.coverage, rng)
        # Streak footprint ≈ mean length × visible width (FWHM, at least one pixel).
        footprint = length * (1 + far[0]) / 2 * max(1.0, FWHM_PER_SIGMA * sigma * (1 + far[1]) / 2)
        wide = rng.random() < self.wide_angle_p
        angle = float(rng.uniform(*(self.wide_angle if wide else self.angle)))
        veil = float(rng.uniform(*self.veil)) if rng.random() < self.veil_p else 0.0
        airlight = float(rng.uniform(*self.airlight))
        n_layers = int(rng.integers(self.layers[0], self.layers[1] + 1))
        return RainParams(
            density=(coverage / footprint,) * 2,
            layers=(n_layers, n_layers),
            length=(length * far[0], length),
            width=(sigma * far[1], sigma),
            intensity=(intensity * far[2], intensity),
            intensity_jitter=float(rng.uniform(0.2, 0.8)),
            angle=(angle, angle),
            angle_spread=float(rng.uniform(*self.angle_spread)),
            defocus=(float(rng.uniform(*self.defocus)),) * 2,
            veil=(veil, veil),
            airlight=(airlight, airlight),
            screen=self.screen,
            jpeg=self.jpeg,
            jpeg_quality=self.jpeg_quality,
        )


def _lerp_params(a: RainParams, b: RainParams, u: float) -> RainParams:
    def lerp(x: Any, y: Any) -> Any:
        if isinstance(x, tuple):
            return tuple(lerp(xi, yi) for xi, yi in zip(x, y, strict=True))
        v = (1 - u) * x + u * y
        return round(v) if isinstance(x, int) else v  # layer counts stay integers

    return replace(a, **{f.name: lerp(getattr(a, f.name), getattr(b, f.name)) for f in fields(a)})


_LIGHT = RainParams()
_HEAVY = RainParams(
    density=(0.008, 0.02),
    layers=(3, 4),
    length=(10.0, 45.0),
    width=(0.5, 1.2),
    intensity=(0.1, 0.3),
    intensity_jitter=0.3,
    angle=(-35.0, 35.0),
    angle_spread=5.0,
    defocus=(0.3, 1.5),
    veil=(0.05, 0.3),
    airlight=(0.7, 0.95),
)

Rain = RainParams | RainMix | RainSpace

PRESETS: dict[str, Rain] = {
    "light": _LIGHT,
    "heavy": _HEAVY,
    "mix": RainMix(_LIGHT, _HEAVY),
    "wide": RainSpace(),
}
"""Named rain presets: Rain12/Rain100L-like, Rain100H-like (dense, thick, veiled), mix of the
two, and ``wide``, the domain-randomised training default (:class:`RainSpace`)."""

DEFAULT_PRESET = "wide"
"""The preset training uses unless told otherwise."""


def preset(name: str) -> Rain:
    """Return a named preset.

    Raises:
        ValueError: the name is not one of :data:`PRESETS`.

    Example:
        >>> preset("heavy").layers
        (3, 4)
    """
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown rain preset {name!r}; known: {known}") from None


def _draw(r: Range, u: float) -> float:
    return r[0] + (r[1] - r[0]) * u


def _streak_layer(
    shape: tuple[int, int],
    density: float,
    length: float,
    sigma: float,
    angle_deg: float,
    intensity: float,
    jitter: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One layer of parallel streaks whose isolated peak brightness is ``intensity``."""
    h, w = shape
    n = rng.poisson(density * h * w)
    seeds = np.bincount(
        rng.integers(0, h * w, n), weights=rng.uniform(jitter, 1.0, n), minlength=h * w
    ).reshape(h, w)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    a = math.radians(angle_deg)
    # Segment along (sin a, cos a) is a sinc in frequency; the Gaussian gives width and
    # defocus. Convolution is circular, which is invisible for random rain.
    transfer = np.sinc(length * (fx * math.sin(a) + fy * math.cos(a))) * np.exp(
        -2 * math.pi**2 * sigma**2 * (fx**2 + fy**2)
    )
    # Scale so that one isolated streak peaks at `intensity` (kernel's spatial max = 1).
    peak = np.fft.irfft2(transfer, s=shape).max()
    layer = np.fft.irfft2(np.fft.rfft2(seeds) * transfer, s=shape)
    return np.maximum(layer, 0.0) * (intensity / peak)


class RainSynthesizer:
    """Adds random synthetic rain to clean float images; reproducible given the generator.

    Args:
        params: a preset name (see :data:`PRESETS`), :class:`RainParams`, :class:`RainMix`
            or :class:`RainSpace`.

    Raises:
        ValueError: an unknown preset name.

    Example:
        >>> synth = RainSynthesizer("heavy")
        >>> clean = np.zeros((32, 48, 3), dtype=np.float32)
        >>> synth.synthesize(clean, np.random.default_rng(1)).shape
        (32, 48, 3)
    """

    def __init__(self, params: str | Rain = "light") -> None:
        self.params = preset(params) if isinstance(params, str) else params

    def rain_layer(
        self, shape: tuple[int, int], rng: np.random.Generator, params: RainParams | None = None
    ) -> np.ndarray:
        """Return the additive rain (H×W float64, ≥ 0) of one image without compositing.

        Args:
            shape: (H, W).
            rng: source of randomness.
            params: fixed parameters; by default drawn from this synthesizer's.
        """
        p = params if params is not None else self._sample(rng)
        n_layers = int(rng.integers(p.layers[0], p.layers[1] + 1))
        density = _draw(p.density, rng.random())
        mean_angle = _draw(p.angle, rng.random())
        defocus = _draw(p.defocus, rng.random())
        depths = (np.arange(n_layers) + rng.random(n_layers)) / n_layers  # 0 far … 1 near
        weights = 1.5 - depths  # far layers hold more, smaller drops
        weights /= weights.sum()
        rain = np.zeros(shape)
        for d, wgt in zip(depths, weights, strict=True):
            u = np.clip(d + rng.normal(0.0, 0.15, 3), 0.0, 1.0)  # depth with per-draw jitter
            sigma = math.hypot(_draw(p.width, u[1]), defocus * d * d)
            rain += _streak_layer(
                shape,
                density * wgt,
                _draw(p.length, u[0]),
                sigma,
                mean_angle + rng.normal(0.0, p.angle_spread),
                _draw(p.intensity, u[2]),
                p.intensity_jitter,
                rng,
            )
        return rain

    def synthesize(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return ``clean`` with rain: veil I = J·t + A·(1 − t), then additive streaks, clipped.

        Args:
            clean: float H×W×3 image in [0, 1].
            rng: source of randomness; the same generator state gives the same rain.

        Returns:
            float32 H×W×3 in [0, 1].

        Raises:
            ImageError: ``clean`` is not H×W×3.
        """
        if clean.ndim != 3 or clean.shape[2] != 3:
            raise ImageError(f"expected an H×W×3 image, got shape {clean.shape}")
        p = self._sample(rng)
        t = 1.0 - _draw(p.veil, rng.random())
        airlight = _draw(p.airlight, rng.random())
        rain = self.rain_layer(clean.shape[:2], rng, p).astype(np.float32)[:, :, None]
        out = clean.astype(np.float32) * t + np.float32(airlight * (1 - t))
        # Extra draws only for presets that use them, so older presets stay reproducible.
        if p.screen and rng.random() < p.screen:
            out += np.minimum(rain, 1.0) * (1.0 - out)  # screen: 1 − (1 − I)(1 − S)
        else:
            out += rain
        out = np.clip(out, 0.0, 1.0)
        if p.jpeg and rng.random() < p.jpeg:
            quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
            out = _jpeg(out, quality)
        return out

    __call__ = synthesize

    def _sample(self, rng: np.random.Generator) -> RainParams:
        return self.params if isinstance(self.params, RainParams) else self.params.sample(rng)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip a float H×W×3 image in [0, 1] through JPEG at ``quality``."""
    buf = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255.0)


def _to_float(image: ImageInput, crop: int, rng: np.random.Generator) -> np.ndarray:
    pixels = rgb8(image, min_side=crop)  # too small for a crop: enlarged so the crop fits
    y = int(rng.integers(0, pixels.shape[0] - crop + 1))
    x = int(rng.integers(0, pixels.shape[1] - crop + 1))
    return pixels[y : y + crop, x : x + crop].astype(np.float32) / np.float32(255.0)


#: Largest preview grid, in pixels: 64 pairs of 256 px crops, or 2 of 1024 px, fit; far below
#: Pillow's decompression-bomb limit, so the grid can be opened again.
MAX_PREVIEW_PIXELS = 12_000_000


def preview_grid(
    images: Sequence[ImageInput],
    params: str | Rain,
    seed: int,
    out_path: str | Path,
    n: int = 8,
    crop: int = 256,
) -> Path:
    """Write a grid of (clean | rainy) random crops, atomically, in the format the name says.

    Crops cycle through ``images``; pairs are laid out ⌈√n⌉ per row with a 4 px gap.

    Args:
        images: paths, PIL images or uint8 arrays.
        params: preset name or parameters (see :class:`RainSynthesizer`).
        seed: seed of the crops and the rain.
        out_path: image to write (``.png``, ``.jpg``, ``.webp``…).
        n: number of pairs.
        crop: side of each square crop in pixels.

    Returns:
        ``out_path`` as a Path.

    Raises:
        ValueError: no images, n < 1 or crop < 1, a grid over :data:`MAX_PREVIEW_PIXELS`, or
            an unknown preset.
        ImageError: an image cannot be read.
        OutputError: the image cannot be written, or its name has no known image format.

    Example:
        >>> preview_grid(["a.png"], "light", seed=0, out_path="grid.png")  # doctest: +SKIP
    """
    if not images or n < 1 or crop < 1:
        raise ValueError(f"need images, n >= 1 and crop >= 1 (got {len(images)}, {n}, {crop})")
    gap = 4
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cell = 2 * crop + gap
    pixels = (rows * (crop + gap) - gap) * (cols * (cell + gap) - gap)
    if pixels > MAX_PREVIEW_PIXELS:
        raise ValueError(
            f"{n} pairs of {crop} px crops make a {pixels / 1e6:.0f} MP image; the limit is "
            f"{MAX_PREVIEW_PIXELS / 1e6:.0f} MP (fewer pairs or a smaller crop)"
        )
    synth = RainSynthesizer(params)
    rng = np.random.default_rng(seed)
    grid = np.full((rows * (crop + gap) - gap, cols * (cell + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        clean = _to_float(images[i % len(images)], crop, rng)
        rainy = synth.synthesize(clean, rng)
        y, x = (i // cols) * (crop + gap), (i % cols) * (cell + gap)
        for k, img in enumerate((clean, rainy)):
            x0 = x + k * (crop + gap)
            grid[y : y + crop, x0 : x0 + crop] = np.round(img * 255).astype(np.uint8)
    return write_image_atomic(Image.fromarray(grid), out_path)
