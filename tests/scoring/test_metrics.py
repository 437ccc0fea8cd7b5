"""Tests for the scoring protocol in derain.scoring.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from derain.errors import ImageError
from derain.scoring.metrics import (
    Score,
    psnr,
    rgb_to_y,
    score_pair,
    ssim,
)


def naive_ssim(a: np.ndarray, b: np.ndarray, data_range: float, win: int = 11) -> float:
    """Wang et al. 2004 written directly: one explicit window per valid position, float64."""
    x = np.arange(win) - (win - 1) / 2
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    h, wd = a.shape
    values = []
    for i in range(h - win + 1):
        for j in range(wd - win + 1):
            pa, pb = a[i : i + win, j : j + win], b[i : i + win, j : j + win]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * (pa - ma) ** 2).sum()
            vb = (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append(
                ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
            )
    return float(np.mean(values))


def t(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float64))[None, None]


# --- colour conversion ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rgb", "y"),
    [
        ((0, 0, 0), 16),
        ((255, 255, 255), 235),
        ((255, 0, 0), 81),  # 16 + 65.481 = 81.481
        ((0, 255, 0), 145),  # 16 + 128.553 = 144.553 -> 145
        ((0, 0, 255), 41),  # 16 + 24.966 = 40.966 -> 41
        ((100, 150, 200), 137),  # 16 + 25.679 + 75.619 + 19.581 = 136.879 -> 137
        ((1, 1, 1), 17),  # 16 + 219/255 = 16.859 -> 17
    ],
)
def test_rgb_to_y_pixels(rgb: tuple[int, int, int], y: int) -> None:
    img = np.array([[rgb]], dtype=np.uint8)
    out = rgb_to_y(img)
    assert out.dtype == np.float64
    assert out.shape == (1, 1)
    assert out[0, 0] == y


def test_rgb_to_y_gray() -> None:
    gray = np.array([[0, 128, 255]], dtype=np.uint8)
    # gray is R = G = B: 16 + 219 * v / 255; 128 -> 125.93 -> 126
    np.testing.assert_array_equal(rgb_to_y(gray), [[16, 126, 235]])


def test_rgb_to_y_rejects_float() -> None:
    with pytest.raises(ImageError):
        rgb_to_y(np.zeros((2, 2, 3), dtype=np.float32))


def test_rgb_to_y_takes_pil_images_as_arrays() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_y(Image.fromarray(arr)), rgb_to_y(arr))


# --- SSIM / PSNR ---------------------------------------------------------------------------


def test_ssim_identical_is_one() -> None:
    x = torch.rand(2, 3, 20, 24, dtype=torch.float64)
    out = ssim(x, x, 1.0)
    assert out.shape == (2,)
    torch.testing.assert_close(out, torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("case", ["offset", "noise"])
def test_ssim_matches_naive(case: str) -> None:
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (16, 18)).astype(np.float64)
    if case == "offset":
        other = np.clip(ref + 20, 0, 255)
    else:
        other = np.clip(ref + rng.normal(0, 25, ref.shape), 0, 255)
    expected = naive_ssim(other, ref, 255.0)
    got = float(ssim(t(other), t(ref), 255.0)[0])
    assert got == pytest.approx(expected, abs=1e-10)
    assert got < 1.0


def test_ssim_small_image_shrinks_window() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random((6, 9)), rng.random((6, 9))
    got = float(ssim(t(a), t(b), 1.0)[0])
    assert got == pytest.approx(naive_ssim(a, b, 1.0, win=6), abs=1e-10)


def test_ssim_follows_dtype_and_is_differentiable() -> None:
    a = torch.rand(2, 3, 16, 16, requires_grad=True)
    b = torch.rand(2, 3, 16, 16)
    out = ssim(a, b, 1.0)
    assert out.dtype == torch.float32
    (1 - out).mean().backward()
    assert a.grad is not None
    assert torch.isfinite(a.grad).all()
    assert a.grad.abs().sum() > 0


def test_ssim_shape_mismatch() -> None:
    with pytest.raises(ImageError):
        ssim(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 15), 1.0)


def test_psnr_known_mse() -> None:
    a = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    b = a.clone()
    b[0] += 10.0  # MSE 100 -> 10·log10(255² / 100)
    out = psnr(b, a, 255.0)
    assert float(out[0]) == pytest.approx(10 * math.log10(255**2 / 100))
    assert math.isinf(float(out[1]))


# --- scoring on images ---------------------------------------------------------------------


def test_score_pair_identical_and_offset() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 200, (20, 20, 3), dtype=np.uint8)
    same = score_pair(img, img)
    assert same == Score(psnr=math.inf, ssim=1.0)
    # +10 on every channel moves Y by 219·10/255 = 8.588..., rounding gives 8 or 9 per pixel.
    shifted = score_pair(img + 10, img)
    dy = rgb_to_y(img + 10) - rgb_to_y(img)
    assert shifted.psnr == pytest.approx(20 * math.log10(255 / math.sqrt((dy**2).mean())))
    assert shifted.ssim == pytest.approx(naive_ssim(rgb_to_y(img + 10), rgb_to_y(img), 255.0))


def test_score_pair_size_mismatch() -> None:
    with pytest.raises(ImageError, match="sizes differ"):
        score_pair(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
