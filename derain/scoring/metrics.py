"""The published deraining scoring protocol (PSNR / SSIM on the Y channel), written once.

Maths only: images come in as pixels, never as files (:func:`derain.scoring.evaluate.evaluate`
reads, derains and scores a paired folder with these functions).

The same torch :func:`ssim` scores results and serves as a differentiable training loss, so
what the model is trained for and what it is scored on cannot drift apart.

Protocol (spec, "Scoring protocol"):

- Y channel of MATLAB ``rgb2ycbcr`` on uint8 images, rounded: see :func:`rgb_to_y`.
- PSNR = 20·log10(255 / RMSE) over the whole image, no border crop.
- SSIM of Wang et al. 2004: 11×11 Gaussian window, σ = 1.5, "valid" filtering, K1 = 0.01,
  K2 = 0.03, L = 255, the mean of the map.
- Scores are averaged per image, then over the data set.

Example:
    >>> import numpy as np
    >>> img = np.full((16, 16, 3), 128, dtype=np.uint8)
    >>> score_pair(img, img).ssim
    1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ImageError
from ..io.imaging import rgb8

__all__ = [
    "ImageLike",
    "Score",
    "ScoreSummary",
    "psnr",
    "rgb_to_y",
    "score_pair",
    "ssim",
]

#: What the metrics take: pixels in memory (files are read by :mod:`derain.io.imaging`).
ImageLike = np.ndarray | Image.Image

_WINDOW = 11
_SIGMA = 1.5
_K1 = 0.01
_K2 = 0.03


@dataclass(frozen=True)
class Score:
    """PSNR (dB) and SSIM of one restored image against its ground truth.

    Example:
        >>> Score(psnr=30.0, ssim=0.9).psnr
        30.0
    """

    psnr: float
    ssim: float


@dataclass(frozen=True)
class ScoreSummary:
    """Per-image scores and their means (each image weighs the same).

    ``psnr`` is ``inf`` when any image is restored exactly (its PSNR is ``inf``).

    Example:
        >>> s = ScoreSummary(names=("a",), scores=(Score(30.0, 0.9),))
        >>> s.psnr, s.ssim
        (30.0, 0.9)
    """

    names: tuple[str, ...]
    scores: tuple[Score, ...]

    @property
    def psnr(self) -> float:
        """Mean PSNR over images (``nan`` when there are none)."""
        return float(np.mean([s.psnr for s in self.scores])) if self.scores else math.nan

    @property
    def ssim(self) -> float:
        """Mean SSIM over images (``nan`` when there are none)."""
        return float(np.mean([s.ssim for s in self.scores])) if self.scores else math.nan


def rgb_to_y(img: ImageLike) -> np.ndarray:
    """Luma of MATLAB ``rgb2ycbcr`` on a uint8 image, rounded as MATLAB stores it in uint8.

    Y = round(16 + 65.481·R + 128.553·G + 24.966·B) with R, G, B in [0, 1]. A gray (H×W)
    image is taken as R = G = B.

    Args:
        img: uint8 RGB (H×W×3) or gray (H×W) array, or a PIL image.

    Returns:
        float64 array H×W holding the rounded values in [16, 235].

    Example:
        >>> rgb_to_y(np.array([[[255, 255, 255]]], dtype=np.uint8))
        array([[235.]])
    """
    rgb = rgb8(img).astype(np.float64) / 255.0
    y = 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]
    # MATLAB rounds half away from zero (np.round rounds half to even); y is always positive.
    return np.floor(y + 0.5)


def _gaussian_1d(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    # Separable 2-D Gaussian, no padding ("valid"), one filter per channel.
    c = x.shape[1]
    kh = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ImageError(f"expected two B×C×H×W tensors of one shape, got {a.shape} and {b.shape}")


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """SSIM of Wang et al. 2004 per image; differentiable, so also usable as a training loss.

    11×11 Gaussian window (σ = 1.5), "valid" filtering, K1 = 0.01, K2 = 0.03; the map is
    averaged over channels and pixels. Device and dtype come from the inputs (pass float64 to
    score). An image smaller than 11 px on a side uses a window shrunk to that side (σ kept),
    so tiny crops still give a finite, differentiable value instead of an error.

    Args:
        a: B×C×H×W tensor.
        b: B×C×H×W tensor of the same shape.
        data_range: L, the span of valid values (255 for uint8 levels, 1 for [0, 1]).

    Returns:
        Tensor of shape B.

    Raises:
        ImageError: the shapes differ or are not 4-D.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> ssim(x, x, 1.0)
        tensor([1., 1.])
    """
    _check_pair(a, b)
    win = min(_WINDOW, a.shape[-2], a.shape[-1])
    g = _gaussian_1d(win, _SIGMA, a)
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    mu_a = _blur_valid(a, g)
    mu_b = _blur_valid(b, g)
    var_a = _blur_valid(a * a, g) - mu_a**2
    var_b = _blur_valid(b * b, g) - mu_b**2
    cov = _blur_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(dim=1)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """PSNR in dB per image over all channels and pixels; ``inf`` where the images are equal.

    Args:
        a: B×C×H×W tensor.
        b: B×C×H×W tensor of the same shape.
        data_range: L, the span of valid values.

    Returns:
        Tensor of shape B.

    Example:
        >>> round(float(psnr(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.1), 1.0)), 2)
        20.0
    """
    _check_pair(a, b)
    mse = ((a - b) ** 2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range**2 / mse)


def score_pair(restored: ImageLike, target: ImageLike) -> Score:
    """Score one restored image against its ground truth with the published protocol.

    Both are turned into the rounded Y channel (:func:`rgb_to_y`) and compared in float64 with
    L = 255, over the whole image. Identical images give PSNR = ``inf`` and SSIM = 1.

    Args:
        restored: uint8 RGB array or PIL image.
        target: the ground truth, same size.

    Raises:
        ImageError: an array is not uint8 H×W / H×W×3, or the sizes differ.

    Example:
        >>> a = np.zeros((16, 16, 3), dtype=np.uint8)
        >>> round(score_pair(a, a + 1).psnr, 2)  # Y differs by round(219/255) = 1 everywhere
        48.13
    """
    ya, yb = rgb_to_y(restored), rgb_to_y(target)
    if ya.shape != yb.shape:
        raise ImageError(f"image sizes differ: restored {ya.shape} vs target {yb.shape}")
    ta = torch.from_numpy(ya)[None, None]
    tb = torch.from_numpy(yb)[None, None]
    with torch.no_grad():
        p = float(psnr(ta, tb, 255.0)[0])
        s = float(ssim(ta, tb, 255.0)[0])
    return Score(psnr=p, ssim=s)
