"""The no-reference rain measures, on a real clean photo with synthetic rain of known shape."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from places import EXAMPLES

from derain.errors import ImageError
from derain.scoring.noreference import (
    densest_streak_window,
    luminance,
    rain_left,
    rain_removed,
    streak_angle,
    streak_energy,
    texture_lost,
)
from derain.train.synthetic import RainParams, RainSynthesizer

CLEAN = EXAMPLES / "rocket_clean.png"


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    """A clean photo (scikit-image's public-domain rocket), 360×320, float in [0, 1]."""
    with Image.open(CLEAN) as im:
        return np.asarray(im.convert("RGB").crop((140, 60, 500, 380)), dtype=np.float32) / 255


def streaks(shape: tuple[int, int], angle: float, seed: int = 0, **kw: object) -> np.ndarray:
    """An additive rain layer (H×W×1) of parallel streaks at ``angle`` degrees from vertical."""
    params = RainParams(angle=(angle, angle), angle_spread=0.0, **kw)  # type: ignore[arg-type]
    layer = RainSynthesizer(params).rain_layer(shape, np.random.default_rng(seed), params)
    return layer[:, :, None]


def blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur by an independent implementation (Pillow's), back to float."""
    im = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255


@pytest.mark.parametrize("angle", [-30.0, -12.0, 0.0, 8.0, 25.0])
def test_streak_angle_recovers_the_synthetic_angle(clean: np.ndarray, angle: float) -> None:
    rainy = np.clip(clean + streaks(clean.shape[:2], angle), 0, 1)
    assert streak_angle(rainy) == pytest.approx(angle, abs=2.0)


def test_streak_angle_follows_the_stronger_of_two_rains(clean: np.ndarray) -> None:
    shape = clean.shape[:2]
    rainy = np.clip(clean + streaks(shape, 15.0) + 0.3 * streaks(shape, -20.0, seed=1), 0, 1)
    assert streak_angle(rainy) == pytest.approx(15.0, abs=3.0)


def test_streak_angle_stays_within_the_tilt_allowed(clean: np.ndarray) -> None:
    rainy = np.clip(clean + streaks(clean.shape[:2], 40.0), 0, 1)
    assert abs(streak_angle(rainy, max_tilt=20.0)) <= 20.0


def test_added_rain_raises_streak_energy_and_rain_left(clean: np.ndarray) -> None:
    layer = streaks(clean.shape[:2], 10.0)
    rainy = np.clip(clean + layer, 0, 1)
    half = np.clip(clean + 0.5 * layer, 0, 1)
    angle = streak_angle(rainy)
    assert streak_energy(rainy, angle) > 1.3 * streak_energy(clean, angle)
    # An output that leaves half the rain leaves more than a perfect one, less than none.
    perfect, partial = rain_left(rainy, clean, angle), rain_left(rainy, half, angle)
    assert perfect < partial < rain_left(rainy, rainy, angle) == pytest.approx(1.0)
    assert rain_removed(rainy, clean, angle) > rain_removed(rainy, half, angle) > 0
    assert rain_removed(rainy, rainy, angle) == 0.0


def test_rain_left_is_about_streaks_along_the_direction(clean: np.ndarray) -> None:
    """Streaks at right angles to the photo's direction are not counted as rain left."""
    shape = clean.shape[:2]
    rainy = np.clip(clean + streaks(shape, 0.0), 0, 1)
    crossing = np.clip(clean + streaks(shape, 90.0, seed=2), 0, 1)
    along = np.clip(clean + streaks(shape, 0.0, seed=2), 0, 1)
    floor = rain_left(rainy, clean, 0.0)  # the scene's own lines along the rain
    assert rain_left(rainy, along, 0.0) - floor > 4 * (rain_left(rainy, crossing, 0.0) - floor)


@pytest.mark.parametrize("preset", ["light", "heavy", "wide"])
def test_removing_rain_loses_no_texture_and_blur_does(clean: np.ndarray, preset: str) -> None:
    rng = np.random.default_rng(3)
    synth = RainSynthesizer(preset)
    layer = synth.rain_layer(clean.shape[:2], rng)[:, :, None]
    rainy = np.clip(clean + layer, 0, 1)
    half = np.clip(clean + 0.5 * layer, 0, 1)
    # Any share of additive rain removed costs nothing, however dense the rain.
    assert texture_lost(rainy, clean) == 0.0
    assert texture_lost(rainy, half) == 0.0
    # Blur costs, more blur costs more, and blurring an output never lowers the cost.
    lost_1, lost_2 = texture_lost(rainy, blur(clean, 1)), texture_lost(rainy, blur(clean, 2))
    assert 0.005 < lost_1 < lost_2
    assert texture_lost(rainy, blur(half, 1)) > texture_lost(rainy, half)


def test_blur_lowers_rain_left_so_texture_lost_must_guard_it(clean: np.ndarray) -> None:
    """Why the clause pairs the two: blur alone would look like rain removal."""
    rainy = np.clip(clean + streaks(clean.shape[:2], 5.0), 0, 1)
    blurred = blur(rainy, 2)
    assert rain_left(rainy, blurred, 5.0) < 1.0
    assert texture_lost(rainy, blurred) > texture_lost(rainy, rainy) == 0.0


def test_densest_window_lands_on_the_planted_rain(clean: np.ndarray) -> None:
    h, w = clean.shape[:2]
    layer = streaks((h, w), 8.0, density=(0.02, 0.02), intensity=(0.2, 0.4))
    planted = np.zeros_like(layer)
    planted[h // 2 :, w // 2 :] = layer[h // 2 :, w // 2 :]  # bottom-right quarter only
    rainy = np.clip(clean + planted, 0, 1)
    size = (w // 3, h // 3)
    x, y = densest_streak_window(rainy, streak_angle(rainy), size)
    assert x >= w // 2 - size[0] // 4 and y >= h // 2 - size[1] // 4
    assert x + size[0] <= w and y + size[1] <= h


def test_densest_window_of_a_small_photo_is_the_photo(clean: np.ndarray) -> None:
    assert densest_streak_window(clean, 0.0, (4000, 3000)) == (0, 0)


def test_bad_arrays_are_refused_in_one_line(clean: np.ndarray) -> None:
    with pytest.raises(ImageError, match="H×W×3 or H×W"):
        luminance(np.zeros((4, 4, 2)))
    nan = clean.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ImageError, match="non-finite"):
        streak_angle(nan)
    with pytest.raises(ImageError, match="differ in size"):
        texture_lost(clean, clean[:-1])
    with pytest.raises(ImageError, match="differ in size"):
        rain_left(clean, clean[:, :-1], 0.0)
