"""The batched PyTorch rain generator against the NumPy one: the same rain in distribution.

Each statistic is measured per image on both generators' output (fixed seeds, so the tests
are deterministic) and the two samples are compared with the two-sample Kolmogorov–Smirnov
distance and their medians. The bounds let the two generators' different random streams
through, and fail for a wrong angle convention, a streak twice as long or twice as bright,
a veil of the wrong strength (checked by mutating the generator: an angle measured from
the horizontal, 2× lengths and 2× brightness each fail). 400 images a side: with fewer, the
heavy-tailed ``wide`` lengths differ by chance more than the bound allows.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from derain.train.synthetic import (
    PRESETS,
    RainParams,
    RainSpace,
    RainSynthesizer,
    RealSpace,
)
from derain.train.synthetic_torch import DRAWERS, BatchRainSynthesizer, draw_look, jpeg_batch

#: The presets the batched generator draws (a kind of preset without a drawer is refused).
BATCHED = sorted(name for name, rain in PRESETS.items() if type(rain) in DRAWERS)
N = 400
SIZE = 96
GREY = 0.3
#: KS distance two samples of N draws from one distribution stay under (α ≈ 0.001: 0.138).
KS_MAX = 0.14


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest gap between the two empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def trimmed_mean(a: np.ndarray, cut: float = 0.1) -> float:
    """Mean of the values between the ``cut`` and 1 − ``cut`` quantiles (robust to a tail)."""
    lo, hi = np.quantile(a, [cut, 1 - cut])
    return float(a[(a >= lo) & (a <= hi)].mean())


def streak_shape(rain: np.ndarray) -> tuple[float, float]:
    """Streak angle from vertical (degrees, + leans right going down) and length (pixels).

    Taken from the rain's autocorrelation: its central blob (above half its peak) lies along
    the streaks; the blob's long axis gives the angle, its extent (4 × std) the length.
    """
    r = rain - rain.mean()
    ac = np.fft.irfft2(np.abs(np.fft.rfft2(r)) ** 2, s=r.shape)
    ac = np.fft.fftshift(ac / ac[0, 0])
    ys, xs = np.nonzero(ac > 0.5)
    ys, xs = ys - r.shape[0] // 2, xs - r.shape[1] // 2
    w = ac[ys + r.shape[0] // 2, xs + r.shape[1] // 2]
    cov = np.cov(np.stack([xs, ys]), aweights=w)
    values, vectors = np.linalg.eigh(cov)
    dx, dy = vectors[:, 1] * (1 if vectors[1, 1] >= 0 else -1)
    return math.degrees(math.atan2(dx, dy)), 4 * math.sqrt(values[1])


def layer_stats(layers: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per image: angle, length, coverage (share of pixels brighter by > 0.05), mean."""
    rows = [(*streak_shape(r), (r > 0.05).mean(), r.mean()) for r in layers if r.max() > 0.01]
    angle, length, coverage, mean = np.array(rows).T
    return {"angle": angle, "length": length, "coverage": coverage, "brightness": mean}


def numpy_layers(params: object, seed: int) -> list[np.ndarray]:
    synth = RainSynthesizer(params)
    return [synth.rain_layer((SIZE, SIZE), np.random.default_rng([seed, i])) for i in range(N)]


def torch_layers(params: object, seed: int, scatter: bool | None = None) -> list[np.ndarray]:
    synth = BatchRainSynthesizer(params, scatter_seeds=scatter)
    gen = torch.Generator().manual_seed(seed)
    layers = synth.rain_layers((SIZE, SIZE), gen, synth.draw_params(N, gen))
    return list(layers.double().numpy())


def composite_stats(rainy: np.ndarray) -> dict[str, np.ndarray]:
    """Per image over a flat grey background: brightness added, and the veil (median)."""
    added = rainy - GREY
    return {
        "added": added.mean(axis=(1, 2, 3)),
        "veil": np.median(added, axis=(1, 2, 3)),
    }


def numpy_rainy(name: str, seed: int) -> np.ndarray:
    synth = RainSynthesizer(name)
    clean = np.full((SIZE, SIZE, 3), GREY, np.float32)
    return np.stack([synth.synthesize(clean, np.random.default_rng([seed, i])) for i in range(N)])


def torch_rainy(name: str, seed: int) -> np.ndarray:
    clean = torch.full((N, 3, SIZE, SIZE), GREY)
    rainy = BatchRainSynthesizer(name)(clean, torch.Generator().manual_seed(seed))
    return rainy.permute(0, 2, 3, 1).numpy()


def assert_same_distribution(a: np.ndarray, b: np.ndarray, what: str, rel: float) -> None:
    d = ks_distance(a, b)
    ma, mb = trimmed_mean(a), trimmed_mean(b)
    print(f"{what}: KS {d:.3f}, trimmed means {ma:.4g} (NumPy) {mb:.4g} (torch)")
    assert d < KS_MAX, f"{what}: KS distance {d:.3f} (trimmed means {ma:.4g} NumPy, {mb:.4g} torch)"
    assert abs(ma - mb) <= rel * max(abs(ma), abs(mb)), (
        f"{what}: trimmed means {ma:.4g} vs {mb:.4g}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("scatter", [True, False], ids=["placed-seeds", "counted-seeds"])
@pytest.mark.parametrize("name", BATCHED)
def test_streaks_match_numpy_in_distribution(name: str, scatter: bool) -> None:
    """Both ways of drawing the seeds (the CPU's and the accelerators')."""
    ref = layer_stats(numpy_layers(name, seed=1))
    got = layer_stats(torch_layers(name, seed=1, scatter=scatter))
    assert abs(len(ref["angle"]) - len(got["angle"])) < 0.1 * N  # as many images with rain
    assert ks_distance(ref["angle"], got["angle"]) < KS_MAX, f"{name} signed angle"
    assert_same_distribution(abs(ref["angle"]), abs(got["angle"]), f"{name} |angle|", rel=0.25)
    assert_same_distribution(ref["length"], got["length"], f"{name} length", rel=0.15)
    assert_same_distribution(ref["coverage"], got["coverage"], f"{name} coverage", rel=0.2)
    assert_same_distribution(ref["brightness"], got["brightness"], f"{name} brightness", rel=0.2)


@pytest.mark.slow
@pytest.mark.parametrize("name", BATCHED)
def test_composite_matches_numpy_in_distribution(name: str) -> None:
    ref = composite_stats(numpy_rainy(name, seed=2))
    got = composite_stats(torch_rainy(name, seed=2))
    assert_same_distribution(ref["added"], got["added"], f"{name} added brightness", rel=0.2)
    assert_same_distribution(ref["veil"], got["veil"], f"{name} veil", rel=0.25)


@pytest.mark.parametrize("angle", [-35.0, 0.0, 20.0])
def test_angle_convention_matches_numpy(angle: float) -> None:
    """One layer at a fixed angle: both generators' streaks point the same way."""
    params = RainParams(
        density=(0.003, 0.003),
        layers=(1, 1),
        length=(30.0, 30.0),
        width=(0.5, 0.5),
        angle=(angle, angle),
        angle_spread=0.0,
        defocus=(0.0, 0.0),
    )
    ref = np.median(layer_stats(numpy_layers(params, seed=3))["angle"])
    got = np.median(layer_stats(torch_layers(params, seed=3))["angle"])
    assert abs(ref - angle) < 3 and abs(got - angle) < 3, (ref, got)


def test_batch_is_reproducible_and_stays_in_range() -> None:
    clean = torch.rand(4, 3, 40, 56)
    synth = BatchRainSynthesizer("wide")
    a = synth(clean, torch.Generator().manual_seed(5))
    b = synth(clean, torch.Generator().manual_seed(5))
    c = synth(clean, torch.Generator().manual_seed(6))
    assert a.shape == clean.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_jpeg_batch_matches_pillow() -> None:
    """The batched JPEG loses about what Pillow's does, at each image's own quality."""
    from derain.train.synthetic import _jpeg

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:72] / 64.0
    base = np.stack([np.sin(5 * x) * 0.4 + 0.5, y, np.cos(7 * x * y) * 0.3 + 0.4], -1)
    image = np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1).astype(np.float32)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    out = jpeg_batch(batch, torch.tensor([50.0, 95.0])).permute(0, 2, 3, 1).numpy()
    for got, quality in zip(out, (50, 95), strict=True):
        ref = _jpeg(image, quality)
        err_ref, err_got = np.abs(ref - image).mean(), np.abs(got - image).mean()
        assert abs(err_got - err_ref) < 0.25 * err_ref, (quality, err_ref, err_got)
        assert np.abs(got - ref).mean() < 0.5 * err_ref


def test_bad_batches_are_refused() -> None:
    synth = BatchRainSynthesizer("light")
    with pytest.raises(ValueError, match="batch"):
        synth(torch.zeros(3, 8, 8), torch.Generator())


def test_a_kind_of_preset_without_a_drawer_is_refused() -> None:
    class Other(RainSpace):
        pass

    with pytest.raises(ValueError, match="no batched drawer for Other"):
        BatchRainSynthesizer(Other())


# --- ``real``: the real-look part on top of ``wide`` -----------------------------------------
# Checked by mutating the batched generator: 2× layer opacity, 2× streak alpha in the renderer,
# 2× veil strength and a look share of 0.6 each fail these tests.

#: ``real`` without JPEG, so that real − wide (same seed) is exactly the real-look part.
REAL_NO_JPEG = RealSpace(base=replace(RainSpace(), jpeg=0.0))
LOOK_DRAWS = 4000
LOOK_N = 600
LOOK_SIZE = 64
DARK, BRIGHT = 0.1, 0.8


def ks_bound(n: int, m: int) -> float:
    """KS distance two samples of n and m draws from one distribution stay under (α ≈ 0.001)."""
    return 1.95 * math.sqrt((n + m) / (n * m))


def assert_same_rate(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Two shares of booleans agree within four standard errors."""
    pa, pb = a.mean(), b.mean()
    p = (a.sum() + b.sum()) / (len(a) + len(b))
    se = math.sqrt(p * (1 - p) * (1 / len(a) + 1 / len(b)))
    print(f"{what}: {pa:.4f} (NumPy) {pb:.4f} (torch)")
    assert abs(pa - pb) <= 4 * se, f"{what}: {pa:.4f} (NumPy) vs {pb:.4f} (torch)"


def log_rounded(a: np.ndarray) -> np.ndarray:
    """log ``a`` to 2 decimals (1 % bins): float32 (torch) and float64 (NumPy) values that stop
    at the same floor, such as the shortest streak, tie again."""
    return np.round(np.log(a.astype(np.float64)), 2)


def assert_same_sample(
    a: np.ndarray,
    b: np.ndarray,
    what: str,
    rel: float,
    tie: bool = False,
    sizes: tuple[int, int] | None = None,
    names: tuple[str, str] = ("NumPy", "torch"),
) -> None:
    """KS distance under :func:`ks_bound` (on :func:`log_rounded` values with ``tie``; for
    ``sizes`` independent draws a side, by default every value is one) and trimmed means
    within ``rel``."""
    d = ks_distance(log_rounded(a), log_rounded(b)) if tie else ks_distance(a, b)
    bound = ks_bound(*(sizes or (len(a), len(b))))
    ma, mb = trimmed_mean(a), trimmed_mean(b)
    print(f"{what}: KS {d:.3f} (< {bound:.3f}), trimmed means {ma:.4g}, {mb:.4g} ({names})")
    assert d < bound, f"{what}: KS distance {d:.3f} (trimmed means {ma:.4g}, {mb:.4g})"
    assert abs(ma - mb) <= rel * max(abs(ma), abs(mb)), f"{what}: {ma:.4g} vs {mb:.4g}"


def test_look_parameters_match_numpy_in_distribution() -> None:
    """The share of images with the real-look part, the veil's rate and strength, the noise
    and every layer's length, width, opacity and density, drawn per image."""
    space = PRESETS["real"]
    assert isinstance(space, RealSpace)
    looks = [space.look(np.random.default_rng([4, i]), 0.0) for i in range(LOOK_DRAWS)]
    ref = [look for look in looks if look is not None]
    got = draw_look(space, torch.zeros(LOOK_DRAWS), torch.Generator().manual_seed(4))
    on = got.on.numpy()
    assert_same_rate(np.array([look is not None for look in looks]), on, "look share")
    ref_veil = np.array([look.veil for look in ref])
    got_veil = got.veil.numpy()[on]
    assert_same_rate(ref_veil > 0, got_veil > 0, "veil rate")
    assert_same_sample(ref_veil[ref_veil > 0], got_veil[got_veil > 0], "veil strength", rel=0.15)
    ref_noise = np.array([look.noise for look in ref])
    got_noise = got.noise.numpy()[on]
    assert_same_rate(ref_noise > 0, got_noise > 0, "noise rate")
    assert_same_sample(ref_noise[ref_noise > 0], got_noise[got_noise > 0], "noise", rel=0.15)
    # The layers of one image share its draws: the images are the independent samples.
    active, sizes = got.active.numpy(), (len(ref), int(on.sum()))
    for name in ("length", "sigma", "opacity", "density"):
        a = np.array([getattr(layer, name) for look in ref for layer in look.layers])
        b = getattr(got, name).numpy()[active]
        assert_same_sample(a, b, f"layer {name}", rel=0.15, tie=True, sizes=sizes)


def two_tone() -> np.ndarray:
    """A crop dark on its left half, bright on its right, H×W×3."""
    clean = np.full((LOOK_SIZE, LOOK_SIZE, 3), DARK, np.float32)
    clean[:, LOOK_SIZE // 2 :] = BRIGHT
    return clean


def look_stats(delta: np.ndarray) -> dict[str, np.ndarray]:
    """Per image (n, H, W, 3 of real − wide): whether it got the look and, for those that did,
    the brightness the look added on the dark half and on the bright half."""
    has = np.abs(delta).max(axis=(1, 2, 3)) > 0
    half = LOOK_SIZE // 2
    return {
        "has": has,
        "dark": delta[has, :, :half].mean(axis=(1, 2, 3)),
        "bright": delta[has, :, half:].mean(axis=(1, 2, 3)),
    }


def test_real_look_renders_like_numpy_in_distribution() -> None:
    """Over a dark-and-bright crop: the share of images with the look, and the brightness the
    look adds on each half (bright streaks on the dark half, little on the bright one)."""
    clean = two_tone()
    wide, real = RainSynthesizer(REAL_NO_JPEG.base), RainSynthesizer(REAL_NO_JPEG)
    ref_delta = np.stack(
        [
            real(clean, np.random.default_rng([5, i])) - wide(clean, np.random.default_rng([5, i]))
            for i in range(LOOK_N)
        ]
    )
    batch = torch.from_numpy(clean).permute(2, 0, 1)[None].repeat(LOOK_N, 1, 1, 1)
    got_real = BatchRainSynthesizer(REAL_NO_JPEG)(batch, torch.Generator().manual_seed(5))
    got_wide = BatchRainSynthesizer(REAL_NO_JPEG.base)(batch, torch.Generator().manual_seed(5))
    got_delta = (got_real - got_wide).permute(0, 2, 3, 1).numpy()
    ref, got = look_stats(ref_delta), look_stats(got_delta)
    assert_same_rate(ref["has"], got["has"], "images with the look")
    assert_same_sample(ref["dark"], got["dark"], "added on dark", rel=0.3)
    assert_same_sample(ref["bright"], got["bright"], "added on bright", rel=0.4)
    assert trimmed_mean(got["dark"]) > 3 * abs(trimmed_mean(got["bright"]))


def test_real_look_batch_is_reproducible_and_in_range() -> None:
    clean = torch.rand(6, 3, 40, 56)
    synth = BatchRainSynthesizer(RealSpace(look_p=1.0))
    a = synth(clean, torch.Generator().manual_seed(7))
    b = synth(clean, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.min() >= 0.0 and a.max() <= 1.0


def test_real_look_masked_like_picked() -> None:
    """The accelerators' way (every image and layer rendered, then masked) against the CPU's
    (only those with the look): the same images get it, with the same added brightness."""
    clean = torch.from_numpy(two_tone()).permute(2, 0, 1)[None].repeat(LOOK_N // 2, 1, 1, 1)
    rainy = clean.clone()
    angle = torch.zeros(len(clean))
    synth = BatchRainSynthesizer("real")
    deltas = [
        synth.add_look(rainy, clean, angle, torch.Generator().manual_seed(8), pick=pick) - clean
        for pick in (True, False)
    ]
    picked, masked = (look_stats(d.permute(0, 2, 3, 1).numpy()) for d in deltas)
    assert np.array_equal(picked["has"], masked["has"]) and 0 < picked["has"].mean() < 1
    names = ("picked", "masked")
    assert_same_sample(picked["dark"], masked["dark"], "added on dark", 0.3, names=names)
    assert_same_sample(picked["bright"], masked["bright"], "added on bright", 0.4, names=names)
