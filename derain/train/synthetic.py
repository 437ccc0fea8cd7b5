"""Synthetic rain over clean photos.

The training default is ``wide`` (:class:`RainSpace`): every image draws its own rain from wide
ranges taken from the published synthesis recipes and from looking at real rain, covering
drizzle to downpours. No validation set was measured to choose them.

``real`` (:class:`RealSpace`) is ``wide`` with real-look rain on top of half the images: depth
layers, streaks blended toward the scene's light, wind, a rare patchy veil and sensor noise.
It is written as per-image parameters (:class:`RealLook`, drawn by :meth:`RealSpace.look`) and
a rendering function (:func:`render_look`), so that it can be ported to batched tensors.

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

from ..errors import ImageError
from ..io.imaging import ImageInput, rgb8
from ..io.writing import write_image_atomic

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "LookLayer",
    "RainMix",
    "RainParams",
    "RainSpace",
    "RainSynthesizer",
    "RealLook",
    "RealSpace",
    "preset",
    "preview_grid",
    "render_look",
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


LOOK_JITTER = 0.5
"""Per-streak brightness factor of real-look layers is drawn from [LOOK_JITTER, 1]."""
LOOK_LIGHT_GRID = 8
"""The local light of real-look streaks is the photo averaged down to this many cells a side."""
LOOK_ENV_FRACTION = 0.1
"""The environment light is the mean colour of this brightest fraction of the pixels."""
LUMA = (0.299, 0.587, 0.114)
"""Rec. 601 luma weights, to rank pixels by brightness."""
LOOK_SHARE = (0.5, 1.5)
"""Each real-look layer's share of the coverage is drawn from this range, then normalised."""
LOOK_FAR_FLOOR = 0.25
"""Where the veil's random field is 0, the far layer keeps this fraction of its streaks."""
LOOK_NOISE_OFFSET = 0.05
LOOK_NOISE_GREY = 0.55
"""Sensor noise σ is ``noise`` × √((out + LOOK_NOISE_OFFSET) / LOOK_NOISE_GREY): at mid-grey."""


@dataclass(frozen=True)
class LookLayer:
    """One depth layer of real-look streaks, as drawn for one image.

    Attributes:
        density: streak seeds per pixel.
        length: streak length in pixels (exposure × fall speed ÷ depth).
        sigma: Gaussian σ across a streak in pixels (drop width and defocus together).
        opacity: blend weight toward the streak light at an isolated streak's core.
        angle: degrees from vertical.
    """

    density: float
    length: float
    sigma: float
    opacity: float
    angle: float


@dataclass(frozen=True)
class RealLook:
    """The real-look components of one image (drawn by :meth:`RealSpace.look`).

    Everything random about the image is here except the positions of the streaks, the veil's
    random field and the sensor noise, which :func:`render_look` draws.

    Attributes:
        layers: depth layers, far first.
        sway: wind: the largest change of streak angle across the image, as a slope (tan).
        sway_period: wavelength of that change in pixels.
        sway_direction: direction of the wave, radians (0: the angle changes down the image).
        sway_phase: phase of the wave, radians.
        light_gain: streak light = ``light_gain`` × light estimate, clipped to 1.
        light_env: share of the environment light in the estimate; the rest is local light.
        veil: peak strength 1 − t of the accumulation veil; 0 for none.
        veil_scale: σ in pixels of the veil's smooth random field.
        noise: sensor noise σ at mid-grey; 0 for none.
    """

    layers: tuple[LookLayer, ...]
    sway: float
    sway_period: float
    sway_direction: float
    sway_phase: float
    light_gain: float
    light_env: float
    veil: float
    veil_scale: float
    noise: float


@dataclass(frozen=True)
class RealSpace:
    """``real``: every image is a ``wide`` image; half of them also get real-look rain on top.

    The first draws of every image are exactly those of :class:`RainSpace` (``base``): with the
    same generator state, the ``wide`` streaks, veil and blending are bit-identical, and the
    JPEG decision is the same draw (the compression is applied last). So the heavy additive
    streaks the shipped weights learnt stay in every image, at the share ``wide`` gives them.
    Then, with probability ``look_p``, :meth:`look` draws a :class:`RealLook` and
    :func:`render_look` adds it, before the JPEG:

    - **Depth.** 2–4 layers at distances from 1 (nearest) to ``depth`` × farther. Image
      length ∝ fall speed × exposure ÷ distance and width ∝ drop size ÷ distance, so far layers
      are short, thin and dense (each layer covers a similar area, with ∝ distance² more,
      smaller streaks); the camera focuses on the farthest layer, so nearer layers get a
      defocus blur ∝ 1/distance − 1/farthest and are wide and faint.
    - **Light.** Drops refract light from a wide field of view (Garg & Nayar), so a streak is
      not a fixed white: each layer blends the image toward a streak light, ``light_gain`` ×
      (``light_env`` × the environment light, the mean colour of the brightest tenth of the
      pixels, + the rest × the local light, the photo averaged over an 8×8 grid). Against dark
      backgrounds streaks are bright and take the scene's tint; against the sky nearly invisible.
    - **Camera.** The nearest layer's length is set by the exposure (``length``, log-uniform);
      brightness falls as 1/√exposure (Garg & Nayar, "When does a camera see rain?") and as
      the defocus spreads it. Wind bends the streaks: a smooth sinusoidal sideways shift
      changes their angle by up to ``sway`` degrees across the image. Sometimes sensor noise
      (shot-like, σ ∝ √brightness), then the ``wide`` JPEG decision.
    - **Accumulation.** Rare (:attr:`veil_rate` of all images, about 5 %), only in dense rain
      (coverage ≥ ``veil_coverage``), weak (1 − t ≤ 0.12, growing with the coverage) and patchy:
      a smooth random field sets where it is, and the far layer is thinned where the field is
      low, so the haze comes with the fine rain that makes it. Where the field is low the
      photo is left as it is, so the network has no reason to dehaze rain-free parts (a
      uniform, frequent veil made an earlier try darken its outputs).

    Ranges were chosen from the sources in the shared spec and by looking at the generated
    rain, never fitted to a validation set or to the real photos.

    Attributes:
        base: the ``wide`` space every image is drawn from first.
        look_p: probability of real-look rain on top of the ``wide`` rain.
        layers: (min, max) number of depth layers.
        length: the nearest layer's streak length in pixels (exposure), log-uniform.
        min_length: shortest streak in pixels (shorter ones read as specks or snow).
        min_aspect: shortest streak in widths (FWHM); a defocused near drop still streaks.
        exposure_ref: streak length at which the opacity is not scaled by 1/√exposure.
        depth: distance of the farthest layer over the nearest's.
        speed: per-layer fall speed factor (drop size), scales the length.
        width: in-focus σ of the nearest layer's streaks in pixels; far layers ÷ distance.
        min_width: thinnest σ drawn; thinner streaks are drawn this wide and fainter.
        defocus: defocus σ of the nearest layer in pixels.
        coverage: fraction of the image all layers' streaks would cover, log-uniform.
        opacity: core opacity of an in-focus streak at ``exposure_ref``, log-uniform.
        max_opacity: cap on a layer's core opacity.
        angle_jitter: std of each layer's angle around the ``wide`` angle, degrees.
        sway: largest angle change across the image from wind, degrees.
        sway_period: wavelength of that change in pixels, log-uniform.
        light_gain: streak light over the light estimate, log-uniform.
        light_env: share of the environment light in the estimate.
        veil_p, veil_coverage: probability of a veil when the coverage is at least
            ``veil_coverage``; none below.
        veil: peak 1 − t of the veil at the largest coverage (scaled by coverage / max).
        veil_scale: σ in pixels of the veil's random field, log-uniform.
        noise_p, noise: probability of sensor noise and its σ at mid-grey, log-uniform.

    Example:
        >>> space = PRESETS["real"]
        >>> rng = np.random.default_rng(0)
        >>> isinstance(space.sample(rng), RainParams)
        True
    """

    base: RainSpace = RainSpace()
    look_p: float = 0.5
    layers: tuple[int, int] = (2, 4)
    length: Range = (16.0, 160.0)
    min_length: float = 4.0
    min_aspect: float = 6.0
    exposure_ref: float = 20.0
    depth: Range = (2.0, 6.0)
    speed: Range = (0.6, 1.0)
    width: Range = (0.5, 1.2)
    min_width: float = 0.35
    defocus: Range = (0.5, 4.0)
    coverage: Range = (0.05, 1.5)
    opacity: Range = (0.12, 0.6)
    max_opacity: float = 0.9
    angle_jitter: float = 3.0
    sway: Range = (0.0, 8.0)
    sway_period: Range = (48.0, 256.0)
    light_gain: Range = (1.0, 1.5)
    light_env: Range = (0.5, 1.0)
    veil_p: float = 0.3
    veil_coverage: float = 0.5
    veil: Range = (0.03, 0.12)
    veil_scale: Range = (12.0, 48.0)
    noise_p: float = 0.3
    noise: Range = (0.002, 0.01)

    @property
    def veil_rate(self) -> float:
        """Fraction of all images that get a real-look veil (the ``wide`` veil aside)."""
        lo, hi = self.coverage
        dense = math.log(hi / max(self.veil_coverage, lo)) / math.log(hi / lo)
        return self.look_p * self.veil_p * max(0.0, dense)

    def sample(self, rng: np.random.Generator) -> RainParams:
        """Draw the ``wide`` parameters of one image (the same draws as ``base``)."""
        return self.base.sample(rng)

    def look(self, rng: np.random.Generator, angle: float) -> RealLook | None:
        """Draw the real-look rain of one image, or None (probability 1 − ``look_p``).

        Args:
            rng: source of randomness, after the image's ``wide`` draws.
            angle: the image's ``wide`` angle from vertical, degrees; the layers follow it.
        """
        if rng.random() >= self.look_p:
            return None
        n = int(rng.integers(self.layers[0], self.layers[1] + 1))
        near_length = _log_uniform(self.length, rng)
        far = float(rng.uniform(*self.depth))
        near_width = float(rng.uniform(*self.width))
        near_defocus = _log_uniform(self.defocus, rng)
        coverage = _log_uniform(self.coverage, rng)
        share = rng.uniform(*LOOK_SHARE, n)
        share *= coverage / share.sum()
        # Visibility falls as 1/√exposure; the exposure is what sets the streak length.
        opacity = _log_uniform(self.opacity, rng) * math.sqrt(self.exposure_ref / near_length)
        layers = []
        for i in range(n):
            z = far ** (1 - i / (n - 1)) if n > 1 else 1.0  # far first, nearest at 1
            width = near_width / z
            defocus = near_defocus * (1 / z - 1 / far) / (1 - 1 / far)  # focus on the far layer
            sigma = math.hypot(max(width, self.min_width), defocus)
            # Streaks, not specks or blobs: at least min_length and min_aspect widths long.
            length = near_length * float(rng.uniform(*self.speed)) / z
            length = max(length, self.min_length, self.min_aspect * FWHM_PER_SIGMA * sigma)
            # Light spread over a wider (defocused, or sub-pixel) streak makes it fainter.
            core = min(self.max_opacity, opacity * width / sigma)
            footprint = length * max(1.0, FWHM_PER_SIGMA * sigma)
            layers.append(
                LookLayer(
                    density=float(share[i]) / footprint,
                    length=length,
                    sigma=sigma,
                    opacity=core,
                    angle=angle + float(rng.normal(0.0, self.angle_jitter)),
                )
            )
        dense = coverage >= self.veil_coverage
        veil = 0.0
        if dense and rng.random() < self.veil_p:
            veil = float(rng.uniform(*self.veil)) * coverage / self.coverage[1]
        return RealLook(
            layers=tuple(layers),
            sway=math.tan(math.radians(float(rng.uniform(*self.sway)))),
            sway_period=_log_uniform(self.sway_period, rng),
            sway_direction=float(rng.uniform(0.0, math.pi)),
            sway_phase=float(rng.uniform(0.0, 2 * math.pi)),
            light_gain=_log_uniform(self.light_gain, rng),
            light_env=float(rng.uniform(*self.light_env)),
            veil=veil,
            veil_scale=_log_uniform(self.veil_scale, rng),
            noise=_log_uniform(self.noise, rng) if rng.random() < self.noise_p else 0.0,
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

Rain = RainParams | RainMix | RainSpace | RealSpace

PRESETS: dict[str, Rain] = {
    "light": _LIGHT,
    "heavy": _HEAVY,
    "mix": RainMix(_LIGHT, _HEAVY),
    "wide": RainSpace(),
    "real": RealSpace(),
}
"""Named rain presets: Rain12/Rain100L-like, Rain100H-like (dense, thick, veiled), mix of the
two, ``wide``, the domain-randomised training default (:class:`RainSpace`), and ``real``,
``wide`` with depth, scene light, wind, a rare patchy veil and camera noise on top
(:class:`RealSpace`)."""

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

        For ``real`` this is the ``wide`` part only; the real-look part is not additive.

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
        quality = None
        if p.jpeg and rng.random() < p.jpeg:
            quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
        # The real-look rain draws after every ``wide`` draw, so ``wide`` is unchanged.
        if isinstance(self.params, RealSpace):
            look = self.params.look(rng, p.angle[0])
            if look is not None:
                out = render_look(out, clean, look, rng)
        if quality is not None:
            out = _jpeg(out, quality)
        return out

    __call__ = synthesize

    def _sample(self, rng: np.random.Generator) -> RainParams:
        return self.params if isinstance(self.params, RainParams) else self.params.sample(rng)


def _upsample_matrix(n: int, cells: int) -> np.ndarray:
    """n×cells matrix that interpolates ``cells`` cell means linearly to ``n`` pixels."""
    pos = np.clip((np.arange(n) + 0.5) * cells / n - 0.5, 0, cells - 1)
    i0 = np.minimum(pos.astype(np.intp), cells - 2) if cells > 1 else np.zeros(n, np.intp)
    frac = pos - i0
    m = np.zeros((n, cells), np.float32)
    m[np.arange(n), i0] = 1 - frac
    if cells > 1:
        m[np.arange(n), i0 + 1] = frac
    return m


def _streak_light(clean: np.ndarray, look: RealLook) -> tuple[np.ndarray, np.ndarray]:
    """The environment light (3,) and the streak light (H×W×3) of ``clean``.

    Environment: mean colour of the brightest ``LOOK_ENV_FRACTION`` of the pixels (ranked on
    every other row and column). Local: cell means of a ``LOOK_LIGHT_GRID``² grid,
    interpolated bilinearly.
    """
    h, w = clean.shape[:2]
    sub = clean[::2, ::2].reshape(-1, 3)
    k = max(1, round(LOOK_ENV_FRACTION * len(sub)))
    brightest = np.argpartition(sub @ np.asarray(LUMA, np.float32), -k)[-k:]
    env = sub[brightest].mean(axis=0)
    cy, cx = min(LOOK_LIGHT_GRID, h), min(LOOK_LIGHT_GRID, w)
    ys = (np.arange(cy) * h) // cy
    xs = (np.arange(cx) * w) // cx
    sums = np.add.reduceat(np.add.reduceat(clean, ys, axis=0), xs, axis=1)
    counts = np.diff(np.append(ys, h))[:, None, None] * np.diff(np.append(xs, w))[None, :, None]
    cells = (sums / counts).astype(np.float32)
    up = _upsample_matrix(h, cy) @ cells.transpose(2, 0, 1) @ _upsample_matrix(w, cx).T
    local = up.transpose(1, 2, 0)
    light = look.light_gain * (look.light_env * env + (1 - look.light_env) * local)
    return env, np.minimum(light, 1.0).astype(np.float32)


def _smooth_field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field in [0, 1] (white noise low-passed by a Gaussian of σ ``sigma``)."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    transfer = np.exp(-2 * math.pi**2 * sigma**2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * transfer, s=shape)
    field -= field.min()
    return field / max(float(field.max()), 1e-12)


def _sway_indices(shape: tuple[int, int], look: RealLook) -> tuple[np.ndarray, ...]:
    """Flat source indices and weights of the wind's sideways shift (a smooth wave)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    # Amplitude whose steepest slope (the largest angle change) is ``sway``.
    amplitude = look.sway * look.sway_period / (2 * math.pi)
    along = y * math.cos(look.sway_direction) + x * math.sin(look.sway_direction)
    src = x - amplitude * np.sin(2 * math.pi * along / look.sway_period + look.sway_phase)
    x0 = np.floor(src)
    frac = (src - x0).astype(np.float32)
    i0 = x0.astype(np.intp) % w
    return (y * w + i0).ravel(), (y * w + (i0 + 1) % w).ravel(), frac.ravel()


def render_look(
    rainy: np.ndarray, clean: np.ndarray, look: RealLook, rng: np.random.Generator
) -> np.ndarray:
    """Add the real-look rain ``look`` to ``rainy`` (the ``wide``-rained ``clean``).

    In order: the veil (out·(1 − s) + E·s, s = ``veil`` × a smooth random field, E the
    environment light); each layer far to near, streaks (seeds ∗ motion segment ∗ Gaussian,
    bent sideways by the wind, which wraps around, the far layer thinned where the veil is
    weak) blending the image toward the streak light, out + α·(L − out); then sensor noise.
    The light comes from ``clean``.

    Args:
        rainy: float32 H×W×3 in [0, 1].
        clean: the same scene without rain, H×W×3 in [0, 1].
        look: the image's parameters.
        rng: source of the streak positions, the veil field and the noise.

    Returns:
        float32 H×W×3 in [0, 1].
    """
    shape = rainy.shape[:2]
    env, light = _streak_light(clean.astype(np.float32), look)
    out = rainy
    field = None
    if look.veil > 0.0:
        field = _smooth_field(shape, look.veil_scale, rng).astype(np.float32)
        strength = np.float32(look.veil) * field[:, :, None]
        out = out * (1 - strength) + env * strength
    sway = _sway_indices(shape, look) if look.sway else None
    for i, layer in enumerate(look.layers):
        alpha = _streak_layer(
            shape,
            layer.density,
            layer.length,
            layer.sigma,
            layer.angle,
            layer.opacity,
            LOOK_JITTER,
            rng,
        ).astype(np.float32)
        if field is not None and i == 0:
            # Dense fine rain where the veil is, sparse elsewhere.
            alpha *= LOOK_FAR_FLOOR + (1 - LOOK_FAR_FLOOR) * field
        if sway is not None:
            flat = alpha.ravel()
            i0, i1, frac = sway
            alpha = (flat[i0] + (flat[i1] - flat[i0]) * frac).reshape(shape)
        out = out + np.minimum(alpha, 1.0)[:, :, None] * (light - out)
    if look.noise > 0.0:
        # Shot-like: σ grows as √brightness, ``noise`` at mid-grey.
        sigma = np.float32(look.noise) * np.sqrt(
            (out + np.float32(LOOK_NOISE_OFFSET)) / np.float32(LOOK_NOISE_GREY)
        )
        out = out + sigma * rng.standard_normal(out.shape, dtype=np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


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
    params: str | Rain | Sequence[str | Rain],
    seed: int,
    out_path: str | Path,
    n: int = 8,
    crop: int = 256,
) -> Path:
    """Write a grid of (clean | rainy …) random crops, atomically, in the format the name says.

    Crops cycle through ``images``; cells are laid out ⌈√n⌉ per row with a 4 px gap. With
    several presets, each crop shows the rain of each, side by side, every one drawn from the
    same generator state (so ``real`` repeats the ``wide`` rain of the crop and adds to it);
    with one, the grid is the same as it always was.

    Args:
        images: paths, PIL images or uint8 arrays.
        params: preset name or parameters (see :class:`RainSynthesizer`), or a list of them.
        seed: seed of the crops and the rain.
        out_path: image to write (``.png``, ``.jpg``, ``.webp``…).
        n: number of crops.
        crop: side of each square crop in pixels.

    Returns:
        ``out_path`` as a Path.

    Raises:
        ValueError: no images or presets, n < 1 or crop < 1, a grid over
            :data:`MAX_PREVIEW_PIXELS`, or an unknown preset.
        ImageError: an image cannot be read.
        OutputError: the image cannot be written, or its name has no known image format.

    Example:
        >>> preview_grid(["a.png"], "light", seed=0, out_path="grid.png")  # doctest: +SKIP
    """
    presets: Sequence[str | Rain]
    if isinstance(params, str | RainParams | RainMix | RainSpace | RealSpace):
        presets = [params]
    else:
        presets = params
    synths = [RainSynthesizer(p) for p in presets]
    if not images or not synths or n < 1 or crop < 1:
        raise ValueError(
            f"need images, presets, n >= 1 and crop >= 1 "
            f"(got {len(images)}, {len(synths)}, {n}, {crop})"
        )
    gap = 4
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cell = (1 + len(synths)) * (crop + gap) - gap
    pixels = (rows * (crop + gap) - gap) * (cols * (cell + gap) - gap)
    if pixels > MAX_PREVIEW_PIXELS:
        raise ValueError(
            f"{n} pairs of {crop} px crops make a {pixels / 1e6:.0f} MP image; the limit is "
            f"{MAX_PREVIEW_PIXELS / 1e6:.0f} MP (fewer pairs or a smaller crop)"
        )
    rng = np.random.default_rng(seed)
    grid = np.full((rows * (crop + gap) - gap, cols * (cell + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        clean = _to_float(images[i % len(images)], crop, rng)
        state = rng.bit_generator.state
        rainy = []
        for synth in synths:
            rng.bit_generator.state = state
            rainy.append(synth.synthesize(clean, rng))
        y, x = (i // cols) * (crop + gap), (i % cols) * (cell + gap)
        for k, img in enumerate([clean, *rainy]):
            x0 = x + k * (crop + gap)
            grid[y : y + crop, x0 : x0 + crop] = np.round(img * 255).astype(np.uint8)
    return write_image_atomic(Image.fromarray(grid), out_path)
