"""No-reference measures of rain in a photo without a clean twin: numpy in, floats out, no I/O.

Real rain has no ground truth, so these measures use what rain is: thin, bright structures that
all run in about one direction. Every measure works on the luminance (the mean of R, G and B)
with oriented Gaussian derivative filters, computed in the Fourier domain over a mirrored border.

- :func:`streak_angle`: the photo's dominant streak direction, in degrees from vertical (the
  sign convention of :mod:`derain.train.synthetic`: positive leans right going down). Every
  pixel on a thin bright structure votes for its orientation (Hessian at a fine scale),
  weighted by how line-like it is; the mode of the votes wins.
- :func:`streak_energy`: the energy of thin, bright structures running along that direction
  (the second derivative across it, on filters stretched along it, at a few widths).
  :func:`rain_left` is the output's share of the input's; :func:`rain_removed` is the same
  share for the removed layer, input − output.
- :func:`texture_lost`: how much the output brightened the input. Rain only adds light, so
  removing it only darkens; blur, smear and halos brighten the dark side of every edge. A
  perfect removal scores 0 whatever it removed, and blurring an output always raises it.
- :func:`densest_streak_window`: where, in a photo, a fixed-size window holds the most streak
  energy: where to look at 1:1.
- :func:`streak_part`: the one image out, not a float: the part of a layer (such as a removed
  rain layer) made of thin bright structures along the streak direction, the veil and the
  short or sideways detail left out (what a distillation teacher may strengthen).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> photo = rng.uniform(0.2, 0.4, (64, 64, 3))
    >>> photo[:, 20] += 0.4  # one bright vertical line
    >>> abs(streak_angle(photo)) < 2
    True
    >>> texture_lost(photo, photo)
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import ImageError

__all__ = [
    "ANGLE_SIGMA",
    "ELONGATION",
    "RIDGE_SIGMAS",
    "STREAK_ALONG",
    "STREAK_BESIDE",
    "densest_streak_window",
    "luminance",
    "oriented_smooth",
    "rain_left",
    "rain_removed",
    "streak_angle",
    "streak_energy",
    "streak_part",
    "texture_lost",
]

ANGLE_SIGMA = 1.5
"""Scale (px) of the Hessian whose ridge orientations vote for the streak direction."""

RIDGE_SIGMAS = (1.0, 2.0, 4.0)
"""Widths (σ across, px) of the streak filters: thin drizzle streaks to wide near drops."""

ELONGATION = 3.0
"""σ along a filter's long axis over σ across it: streaks are many times longer than wide."""

#: Angles in degrees, one vote bin per degree; votes are smoothed over this many degrees.
_ANGLE_SMOOTH_DEG = 2.0
#: Filters reach this many σ; the mirrored border is as wide.
_REACH = 4.0


def luminance(image: np.ndarray) -> np.ndarray:
    """The float64 luminance (mean of R, G and B) of an H×W×3 or H×W image in [0, 1].

    Raises:
        ImageError: not H×W or H×W×3, smaller than 2×2, or not finite.
    """
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr.mean(axis=2)
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise ImageError(f"expected an H×W×3 or H×W image, got shape {np.shape(image)}")
    if not np.isfinite(arr).all():
        raise ImageError("image has non-finite values")
    return arr


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ImageError(f"input and output differ in size: {a.shape} against {b.shape}")


def _oriented_filters(
    y: np.ndarray, angle_deg: float, specs: Sequence[tuple[float, float, int, int]]
) -> list[np.ndarray]:
    """Filter ``y`` with oriented Gaussian derivatives, one output per spec.

    A spec is (σ across, σ along, derivative order across, derivative order along), where
    "along" is the direction (sin a, cos a) in (x right, y down) image axes and "across" is
    perpendicular to it. The image is mirrored at its borders so that no edge appears there.
    """
    reach = max(max(s[0], s[1]) for s in specs) * _REACH
    pad = min(math.ceil(reach), *(n - 1 for n in y.shape))
    padded = np.pad(y, pad, mode="symmetric")
    h, w = padded.shape
    spectrum = np.fft.rfft2(padded)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    a = math.radians(angle_deg)
    f_along = fx * math.sin(a) + fy * math.cos(a)
    f_across = fx * math.cos(a) - fy * math.sin(a)
    outs = []
    for s_across, s_along, d_across, d_along in specs:
        transfer = (
            (2j * math.pi * f_across) ** d_across
            * (2j * math.pi * f_along) ** d_along
            * np.exp(-2 * math.pi**2 * (s_across**2 * f_across**2 + s_along**2 * f_along**2))
        )
        out = np.fft.irfft2(spectrum * transfer, s=(h, w))
        outs.append(out[pad : h - pad, pad : w - pad])
    return outs


def streak_angle(rainy: np.ndarray, max_tilt: float = 60.0) -> float:
    """The dominant direction of thin bright structures, in degrees from vertical.

    Each pixel's Hessian (scale :data:`ANGLE_SIGMA`) gives the orientation of the ridge through
    it and a weight, the squared ridge strength max(0, −λ_min) − |λ_max| (high on lines, zero on
    blobs and flat ground). The weighted votes are binned per degree, smoothed, and the mode
    within ``max_tilt`` degrees of vertical is the answer (rain falls; horizontal lines are the
    scene's), refined between bins.

    Args:
        rainy: H×W×3 or H×W image in [0, 1], usually the rainy input.
        max_tilt: the largest tilt from vertical considered, degrees (at most 90).

    Returns:
        Degrees in [−max_tilt, max_tilt]; positive leans right going down, as the ``angle`` of
        :class:`derain.train.synthetic.RainParams`.
    """
    y = luminance(rainy)
    # With a = 0, "across" is x and "along" is y.
    s = ANGLE_SIGMA
    lxx, lyy, lxy = _oriented_filters(y, 0.0, [(s, s, 2, 0), (s, s, 0, 2), (s, s, 1, 1)])
    half_diff = (lxx - lyy) / 2
    root = np.hypot(half_diff, lxy)
    mean = (lxx + lyy) / 2
    lam_min, lam_max = mean - root, mean + root
    weight = np.maximum(np.maximum(0.0, -lam_min) - np.abs(lam_max), 0.0) ** 2
    # The eigenvector of λ_max runs along a bright ridge: angle from the x axis, then from
    # vertical (y down), folded into [−90, 90).
    along_from_x = 0.5 * np.degrees(np.arctan2(2 * lxy, lxx - lyy))
    from_vertical = (90.0 - along_from_x + 90.0) % 180.0 - 90.0
    votes, _ = np.histogram(from_vertical, bins=180, range=(-90.0, 90.0), weights=weight)
    offsets = np.arange(-90, 90)
    kernel = np.exp(-0.5 * (offsets / _ANGLE_SMOOTH_DEG) ** 2)
    # Circular smoothing: orientation wraps around at ±90°.
    smooth = np.real(np.fft.ifft(np.fft.fft(votes) * np.fft.fft(np.fft.ifftshift(kernel))))
    centres = offsets + 0.5
    allowed = np.abs(centres) <= max_tilt
    i = int(np.argmax(np.where(allowed, smooth, -np.inf)))
    left, mid, right = smooth[i - 1], smooth[i], smooth[(i + 1) % 180]
    curve = left - 2 * mid + right
    shift = 0.5 * (left - right) / curve if curve < 0 else 0.0
    return float(np.clip(centres[i] + shift, -max_tilt, max_tilt))


def _streak_map(y: np.ndarray, angle_deg: float) -> np.ndarray:
    """Per pixel, the strongest scale-normalised bright-ridge response along ``angle_deg``."""
    specs = [(s, s * ELONGATION, 2, 0) for s in RIDGE_SIGMAS]
    responses = _oriented_filters(y, angle_deg, specs)
    # A bright line has a negative second derivative across it; σ² makes scales comparable.
    ridges = [np.maximum(-(s**2) * r, 0.0) for s, r in zip(RIDGE_SIGMAS, responses, strict=True)]
    return np.max(ridges, axis=0)


def streak_energy(image: np.ndarray, angle_deg: float) -> float:
    """Mean squared response of thin bright structures running along ``angle_deg``.

    Args:
        image: H×W×3 or H×W; a photo or a removed layer (values may be negative).
        angle_deg: the streak direction, degrees from vertical (see :func:`streak_angle`).
    """
    return float(np.mean(_streak_map(luminance(image), angle_deg) ** 2))


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def rain_left(
    rainy: np.ndarray, derained: np.ndarray, angle_deg: float, input_energy: float | None = None
) -> float:
    """The output's streak energy as a share of the input's (1 = untouched, lower = less rain).

    Scene lines that run along the rain count too, so a perfect removal stays above 0; compare
    two outputs of the same photo, not photos with each other. ``input_energy`` is
    ``streak_energy(rainy, angle_deg)`` when the caller already has it.
    """
    y_in, y_out = luminance(rainy), luminance(derained)
    _same_shape(y_in, y_out)
    whole = streak_energy(y_in, angle_deg) if input_energy is None else input_energy
    return _share(streak_energy(y_out, angle_deg), whole)


def rain_removed(
    rainy: np.ndarray, derained: np.ndarray, angle_deg: float, input_energy: float | None = None
) -> float:
    """Streak energy of the removed layer (input − output) as a share of the input's."""
    y_in, y_out = luminance(rainy), luminance(derained)
    _same_shape(y_in, y_out)
    whole = streak_energy(y_in, angle_deg) if input_energy is None else input_energy
    return _share(streak_energy(y_in - y_out, angle_deg), whole)


def texture_lost(rainy: np.ndarray, derained: np.ndarray) -> float:
    """How much the output brightened the input: the RMS of max(0, output − input) luminance.

    Rain adds light (a streak is additive, or screen-blended, over the scene), so taking rain
    away only ever darkens a pixel, and a perfect removal scores 0 however much rain it took.
    What brightens pixels is what destroys detail: blur and smear lift the dark side of every
    edge and line, and halos lift the ground beside a streak. Blurring an output therefore
    always raises this measure; removing more rain never does. Units: [0, 1] brightness
    (0.004 is about one grey level of 255).

    It is blind to detail that a model darkens away (a bright scene line taken for rain); that
    shows up as lower rain left on a photo whose crop then looks wrong, which the crops are for.
    """
    y_in, y_out = luminance(rainy), luminance(derained)
    _same_shape(y_in, y_out)
    return float(np.sqrt(np.mean(np.maximum(y_out - y_in, 0.0) ** 2)))


def densest_streak_window(
    rainy: np.ndarray, angle_deg: float, size: tuple[int, int]
) -> tuple[int, int]:
    """Top-left (x, y) of the ``size`` = (width, height) window with the most streak energy.

    The window is clipped to the image, so a photo smaller than ``size`` gives (0, 0).
    """
    energy = _streak_map(luminance(rainy), angle_deg) ** 2
    h, w = energy.shape
    cw, ch = min(size[0], w), min(size[1], h)
    table = np.zeros((h + 1, w + 1))
    table[1:, 1:] = energy.cumsum(axis=0).cumsum(axis=1)
    sums = table[ch:, cw:] - table[:-ch, cw:] - table[ch:, :-cw] + table[:-ch, :-cw]
    y0, x0 = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(x0), int(y0)


#: σ along a streak of :func:`streak_part`'s smoothing: the middle ridge width, elongated.
STREAK_ALONG = ELONGATION * RIDGE_SIGMAS[len(RIDGE_SIGMAS) // 2]
#: σ across of the background :func:`streak_part` takes away: twice the widest ridge.
STREAK_BESIDE = 2 * max(RIDGE_SIGMAS)


def oriented_smooth(image: np.ndarray, angle_deg: float, across: float, along: float) -> np.ndarray:
    """``image`` (H×W×C or H×W) blurred per channel by a Gaussian of σ ``across`` and ``along``
    the direction ``angle_deg`` (degrees from vertical), over a mirrored border; float64.

    Example:
        >>> image = np.zeros((32, 32))
        >>> image[:, 16] = 1.0  # a vertical line is unchanged by smoothing along it
        >>> bool(np.allclose(oriented_smooth(image, 0.0, 0.0, 4.0), image, atol=1e-6))
        True
    """
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim not in (2, 3) or min(arr.shape[:2]) < 2 or not np.isfinite(arr).all():
        raise ImageError(f"expected a finite H×W×C or H×W image, got shape {np.shape(image)}")
    channels = arr[..., None] if arr.ndim == 2 else arr
    out = np.stack(
        [
            _oriented_filters(channels[..., c], angle_deg, [(across, along, 0, 0)])[0]
            for c in range(channels.shape[2])
        ],
        axis=2,
    )
    return out[..., 0] if arr.ndim == 2 else out


def streak_part(layer: np.ndarray, angle_deg: float) -> np.ndarray:
    """The streaks of ``layer`` along ``angle_deg``: thin, long and bright, the rest left out.

    Each channel is smoothed along the direction (σ :data:`STREAK_ALONG`), which keeps a
    streak and fades a dot or a line at another angle, and what is wider across the direction
    than :data:`STREAK_BESIDE` (a veil, a glare, a shading) is taken away; only the bright side
    (rain adds light) is kept, and never more than the layer holds at a pixel.

    Args:
        layer: H×W×3 or H×W, for example input − output of a deraining model.
        angle_deg: the streak direction, degrees from vertical (see :func:`streak_angle`).

    Returns:
        float32, the shape of ``layer``, between 0 and max(0, ``layer``) at every pixel.

    Example:
        >>> layer = np.zeros((64, 64))
        >>> layer[8:56, 30] = 0.5  # a long vertical streak
        >>> layer[20, 4:60] = 0.5  # a sideways line
        >>> part = streak_part(layer, 0.0)
        >>> bool(part[32, 30] > 0.2 > part[20, 12])
        True
    """
    smooth = oriented_smooth(layer, angle_deg, 0.0, STREAK_ALONG)
    beside = oriented_smooth(layer, angle_deg, STREAK_BESIDE, STREAK_ALONG)
    bright = np.maximum(np.asarray(layer, dtype=np.float64), 0.0)
    return np.clip(smooth - beside, 0.0, bright).astype(np.float32)
