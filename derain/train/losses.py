"""The paper's loss: Charbonnier plus a negatively weighted SSIM, on both outputs.

An optional term, off by default, makes leaving rain cost more than removing too much
(:func:`rain_left`); the paper's loss is the default and is unchanged by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.danet import DANetOutput
from ..scoring.metrics import ssim

__all__ = ["DANetLoss", "LossTerms", "charbonnier", "rain_left"]


def charbonnier(a: Tensor, b: Tensor, eps: float = 1e-3) -> Tensor:
    """Mean of sqrt((a − b)² + ε²), a smooth L1.

    Example:
        >>> round(float(charbonnier(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), 1e-3)), 6)
        0.001
    """
    return torch.sqrt((a - b) ** 2 + eps * eps).mean()


def rain_left(derained: Tensor, clean: Tensor, rainy: Tensor) -> Tensor:
    """Brightness the output keeps above the clean image where rain was added, per unit of rain.

    The rain layer's positive part ``m = max(rainy − clean, 0)`` weights the output's local
    excess ``max(e − ē, 0)``, where ``e = derained − clean`` and ``ē`` is its mean over each
    image and channel. The result is 0 when the rain is gone, and grows with the streaks left.
    Removing too much (a streak darker than the clean image) costs nothing here, so the term
    tilts the loss towards removal where the plain Charbonnier is neutral. Taking out ``ē``
    makes a uniform shift of the output worthless against the term: without it, a network
    lowers every pixel a little (by 0.005 on Rain12 after 250 steps at weight 0.4), which the
    benchmarks punish; the level of the output stays the Charbonnier's job.

    Example:
        >>> clean = torch.zeros(1, 1, 2, 2); rainy = torch.tensor([[[[0.5, 0.0], [0.5, 0.0]]]])
        >>> float(rain_left(clean, clean, rainy)), float(rain_left(rainy, clean, rainy))
        (0.0, 0.25)
    """
    added = (rainy - clean).clamp_min(0)
    excess = derained - clean
    kept = (excess - excess.mean(dim=(-2, -1), keepdim=True)).clamp_min(0)
    return (kept * added).sum() / added.sum().clamp_min(1e-6)


@dataclass(frozen=True)
class LossTerms:
    """The total loss and its parts (detached), for logging.

    All stay tensors on the training device: reading one (``float(terms.ssim_full)``) makes
    the host wait for the device, so the loop does it only on the steps it logs.
    """

    total: Tensor
    charbonnier_full: Tensor
    ssim_full: Tensor
    charbonnier_low: Tensor
    ssim_low: Tensor
    rain_left: Tensor | None = None


class DANetLoss(torch.nn.Module):
    """L = L_DSN + λ·L_RSN, each Charbonnier(ε) + α·SSIM (α = −0.15 rewards SSIM).

    The DSN term compares the half-resolution output with the bilinearly halved clean image.
    With ``rain_left_weight`` w > 0 (not in the paper), ``w · rain_left`` of the full-size
    output is added; it needs the rainy input, passed as ``rainy``. ``rain_left_rows`` picks
    the images of the batch the term is measured on (the trainer's synthetic or unlabelled
    part); every image by default.
    """

    def __init__(
        self,
        eps: float = 1e-3,
        ssim_weight: float = -0.15,
        lambda_rsn: float = 1.0,
        rain_left_weight: float = 0.0,
        rain_left_rows: slice = slice(None),
    ):
        super().__init__()
        if rain_left_weight < 0:
            raise ValueError(f"rain_left_weight must be >= 0, not {rain_left_weight}")
        self.eps = eps
        self.ssim_weight = ssim_weight
        self.lambda_rsn = lambda_rsn
        self.rain_left_weight = rain_left_weight
        self.rain_left_rows = rain_left_rows

    def forward(self, out: DANetOutput, clean: Tensor, rainy: Tensor | None = None) -> LossTerms:
        clean_low = F.interpolate(clean, scale_factor=0.5, mode="bilinear", align_corners=False)
        derained, low = out.derained.float(), out.derained_low.float()
        ch_full, ch_low = (
            charbonnier(derained, clean, self.eps),
            charbonnier(low, clean_low, self.eps),
        )
        ss_full = ssim(derained, clean, 1.0).mean()
        ss_low = ssim(low, clean_low, 1.0).mean()
        total = (ch_low + self.ssim_weight * ss_low) + self.lambda_rsn * (
            ch_full + self.ssim_weight * ss_full
        )
        parts = (ch_full.detach(), ss_full.detach(), ch_low.detach(), ss_low.detach())
        if not self.rain_left_weight:
            return LossTerms(total, *parts)
        if rainy is None:
            raise ValueError("rain_left_weight > 0 needs the rainy input")
        rows = self.rain_left_rows
        left = rain_left(derained[rows], clean[rows], rainy[rows].float())
        return LossTerms(total + self.rain_left_weight * left, *parts, rain_left=left.detach())
