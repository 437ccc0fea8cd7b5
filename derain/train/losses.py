"""The paper's loss: Charbonnier plus a negatively weighted SSIM, on both outputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..metrics import ssim
from ..models.danet import DANetOutput

__all__ = ["DANetLoss", "LossTerms", "charbonnier"]


def charbonnier(a: Tensor, b: Tensor, eps: float = 1e-3) -> Tensor:
    """Mean of sqrt((a − b)² + ε²), a smooth L1.

    Example:
        >>> float(charbonnier(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), 1e-3))
        0.001
    """
    return torch.sqrt((a - b) ** 2 + eps * eps).mean()


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


class DANetLoss(torch.nn.Module):
    """L = L_DSN + λ·L_RSN, each Charbonnier(ε) + α·SSIM (α = −0.15 rewards SSIM).

    The DSN term compares the half-resolution output with the bilinearly halved clean image.
    """

    def __init__(self, eps: float = 1e-3, ssim_weight: float = -0.15, lambda_rsn: float = 1.0):
        super().__init__()
        self.eps = eps
        self.ssim_weight = ssim_weight
        self.lambda_rsn = lambda_rsn

    def forward(self, out: DANetOutput, clean: Tensor) -> LossTerms:
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
        return LossTerms(total, *(t.detach() for t in (ch_full, ss_full, ch_low, ss_low)))
