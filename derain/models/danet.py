"""DANet and DANet◆ (Jiang et al., IJCAI 2022): the network, with no I/O and no globals.

The layout follows the layer-by-layer description in the project's spec: a deraining
sub-network (DSN) works at half resolution, an association-learning module (ALM) turns its
rain estimate into a mask over full-resolution features, and a reconstruction sub-network
(RSN) brings the result back to full size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DANet", "DANetConfig", "DANetOutput"]


@dataclass(frozen=True)
class DANetConfig:
    """Architecture of one DANet variant.

    Attributes:
        channels: feature width ``C`` used throughout the network.
        orb_blocks: RCABs in each original-resolution branch (``n``).
        stage_blocks: blocks per encoder/decoder stage of the EDB (``k``).
        ca_reduction: channel-attention bottleneck ratio.
        share_fusion_dsc: when true the third DSC of each progressive fusion block reuses the
            weights of the second (the published ``danet`` parameter count).
    """

    channels: int = 48
    orb_blocks: int = 5
    stage_blocks: int = 2
    ca_reduction: int = 4
    share_fusion_dsc: bool = True


class DANetOutput(NamedTuple):
    """Everything the forward pass produces (all in the input's [0, 1] scale)."""

    derained: Tensor  # B×3×H×W
    derained_low: Tensor  # B×3×H/2×W/2, DSN output b_s
    rain: Tensor  # B×3×H/2×W/2, rain layer r_s
    mask: Tensor  # B×C×H/2×W/2, ALM mask M in (0, 1)


def conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1(cin: int, cout: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, bias=bias)


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.squeeze = conv1(channels, channels // reduction)
        self.excite = conv1(channels // reduction, channels)

    def forward(self, x: Tensor) -> Tensor:
        w = F.adaptive_avg_pool2d(x, 1)
        w = torch.sigmoid(self.excite(F.relu(self.squeeze(w))))
        return x * w


class DSC(nn.Module):
    """Depth-wise separable convolution: 3×3 depth-wise then 1×1 point-wise, both biased."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=True)
        self.pointwise = conv1(cin, cout, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class RCAB(nn.Module):
    """Residual channel-attention block with full 3×3 convolutions."""

    def __init__(self, channels: int, reduction: int, act: nn.PReLU) -> None:
        super().__init__()
        self.conv_a = conv3(channels, channels)
        self.conv_b = conv3(channels, channels)
        self.attention = ChannelAttention(channels, reduction)
        self.act = act  # shared with the rest of the sub-network

    def forward(self, x: Tensor) -> Tensor:
        return x + self.attention(self.conv_b(self.act(self.conv_a(x))))


class SFB2(nn.Module):
    """Selective fusion of two inputs: CA(DSC([a, b])) + a."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.dsc = DSC(2 * channels, channels)
        self.attention = ChannelAttention(channels, reduction)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.attention(self.dsc(torch.cat([a, b], dim=1))) + a


class SFB4(nn.Module):
    """Progressive fusion of four inputs, deepest first."""

    def __init__(self, channels: int, reduction: int, share_last: bool) -> None:
        super().__init__()
        self.dsc_a = DSC(2 * channels, channels)
        self.dsc_b = DSC(2 * channels, channels)
        self.dsc_c = None if share_last else DSC(2 * channels, channels)
        self.attention = ChannelAttention(channels, reduction)

    def forward(self, x: Tensor, s1: Tensor, s2: Tensor, s3: Tensor) -> Tensor:
        last = self.dsc_b if self.dsc_c is None else self.dsc_c
        u = self.dsc_a(torch.cat([s2, s3], dim=1))
        v = self.dsc_b(torch.cat([s1, u], dim=1))
        f = last(torch.cat([x, v], dim=1))
        return self.attention(f) + f


class RCABDSC(nn.Module):
    """RCAB built from depth-wise separable convolutions, closed by a selective fusion."""

    def __init__(self, channels: int, reduction: int, act: nn.PReLU) -> None:
        super().__init__()
        self.dsc_a = DSC(channels, channels)
        self.dsc_b = DSC(channels, channels)
        self.attention = ChannelAttention(channels, reduction)
        self.fuse = SFB2(channels, reduction)
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        r = self.attention(self.dsc_b(self.act(self.dsc_a(x))))
        return self.fuse(r, x)


class Resample(nn.Module):
    """Bilinear rescale by a fixed factor followed by a 1×1 convolution."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.proj = conv1(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.proj(x)


class ORB(nn.Module):
    """Original-resolution branch: a chain of RCABs with a long skip."""

    def __init__(self, cfg: DANetConfig, act: nn.PReLU) -> None:
        super().__init__()
        c, r = cfg.channels, cfg.ca_reduction
        self.blocks = nn.Sequential(*(RCAB(c, r, act) for _ in range(cfg.orb_blocks)))
        self.tail = conv3(c, c)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.tail(self.blocks(x))


class EncoderStage(nn.Module):
    def __init__(self, cfg: DANetConfig, act: nn.PReLU) -> None:
        super().__init__()
        c, r = cfg.channels, cfg.ca_reduction
        self.blocks = nn.Sequential(*(RCABDSC(c, r, act) for _ in range(cfg.stage_blocks)))
        self.fuse = SFB2(c, r)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(x, self.blocks(x))


class DecoderStage(nn.Module):
    def __init__(self, cfg: DANetConfig, act: nn.PReLU) -> None:
        super().__init__()
        c, r = cfg.channels, cfg.ca_reduction
        self.gather = SFB4(c, r, share_last=cfg.share_fusion_dsc)
        self.blocks = nn.Sequential(*(RCAB(c, r, act) for _ in range(cfg.stage_blocks)))
        self.fuse = SFB2(c, r)

    def forward(self, x: Tensor, s1: Tensor, s2: Tensor, s3: Tensor) -> Tensor:
        p = self.gather(x, s1, s2, s3)
        return self.fuse(p, self.blocks(p))


class EDB(nn.Module):
    """Encoder–decoder branch: three levels below the input, dense cross-scale fusion."""

    def __init__(self, cfg: DANetConfig, act: nn.PReLU) -> None:
        super().__init__()
        c = cfg.channels
        self.down_in, self.down_1, self.down_2 = (Resample(c, 0.5) for _ in range(3))
        self.enc1, self.enc2, self.enc3 = (EncoderStage(cfg, act) for _ in range(3))
        self.dec1, self.dec2, self.dec3 = (DecoderStage(cfg, act) for _ in range(3))
        # Resamplers feeding each decoder, named after what they carry.
        self.d3_e2, self.d3_e1 = Resample(c, 0.5), Resample(c, 0.25)
        self.d2_d3, self.d2_e1, self.d2_e3 = Resample(c, 2), Resample(c, 0.5), Resample(c, 2)
        self.d1_d2, self.d1_e2, self.d1_e3 = Resample(c, 2), Resample(c, 2), Resample(c, 4)
        self.up_out = Resample(c, 2)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(self.down_in(x))  # h/2
        e2 = self.enc2(self.down_1(e1))  # h/4
        e3 = self.enc3(self.down_2(e2))  # h/8
        d3 = self.dec3(e3, e3, self.d3_e2(e2), self.d3_e1(e1))
        d2 = self.dec2(self.d2_d3(d3), e2, self.d2_e1(e1), self.d2_e3(e3))
        d1 = self.dec1(self.d1_d2(d2), e1, self.d1_e2(e2), self.d1_e3(e3))
        return self.up_out(d1)


class Backbone(nn.Module):
    """ORB and EDB side by side, merged by a selective fusion."""

    def __init__(self, cfg: DANetConfig, act: nn.PReLU) -> None:
        super().__init__()
        self.orb = ORB(cfg, act)
        self.edb = EDB(cfg, act)
        self.fuse = SFB2(cfg.channels, cfg.ca_reduction)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(self.orb(x), self.edb(x))


def _half(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)


def _double(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def quadrant_stack(x: Tensor) -> Tensor:
    """Stack the four H/2×W/2 quadrants of ``x`` on the channel axis (TL, TR, BL, BR)."""
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    top, bottom = x[..., :h, :], x[..., h:, :]
    # B×3×H×W -> B×12×H/2×W/2
    return torch.cat([top[..., :w], top[..., w:], bottom[..., :w], bottom[..., w:]], dim=1)


class DANet(nn.Module):
    """DANet: rain removal by dynamic association learning.

    Args:
        cfg: the architecture; ``DANetConfig()`` is the baseline ``danet``.

    Example:
        >>> net = DANet(DANetConfig())
        >>> out = net(torch.rand(1, 3, 64, 64))
        >>> out.derained.shape
        torch.Size([1, 3, 64, 64])
    """

    #: Height and width of the input must be multiples of this (pad, run, crop): a fact of
    #: the architecture (how often it halves the resolution), not a setting.
    size_multiple: ClassVar[int] = 16

    def __init__(self, cfg: DANetConfig = DANetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        c, r = cfg.channels, cfg.ca_reduction
        if c % 2:
            raise ValueError(f"channels must be even for the pixel shuffle, got {c}")
        self.act_dsn = nn.PReLU(num_parameters=1, init=0.25)
        self.act_rsn = nn.PReLU(num_parameters=1, init=0.25)
        # DSN head: a half-resolution view and a lossless quadrant view of the input.
        self.head_half = conv3(3, c)
        self.head_half_block = RCAB(c, r, self.act_dsn)
        self.head_quad = conv3(12, c)
        self.head_quad_block = RCAB(c, r, self.act_dsn)
        self.head_fuse = conv3(2 * c, c)
        self.dsn = Backbone(cfg, self.act_dsn)
        self.dsn_out = conv3(c, 3)
        # ALM
        self.alm_image = conv3(3, c, stride=2)
        self.alm_mask = conv3(3, c)
        self.alm_clean = conv3(3, c)
        # RSN
        self.rsn = Backbone(cfg, self.act_rsn)
        self.rsn_expand = conv3(c, 2 * c)
        self.rsn_out = conv3(c // 2, 3)

    def forward(self, x: Tensor) -> DANetOutput:
        """Derain ``x`` (B×3×H×W in [0, 1], H and W multiples of :attr:`size_multiple`)."""
        m = self.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"height and width must be multiples of {m}, got {tuple(x.shape)}")
        xs = _half(x)
        f1 = self.head_half_block(self.head_half(xs))
        f2 = self.head_quad_block(self.head_quad(quadrant_stack(x)))
        g = self.dsn(self.head_fuse(torch.cat([f1, f2], dim=1)))
        rain = self.dsn_out(g)
        low = xs - rain

        t = self.alm_image(x)
        mask = torch.sigmoid(self.alm_mask(rain))
        f_alm = t * mask + t + self.alm_clean(low)

        g = self.rsn(f_alm)
        residual = self.rsn_out(F.pixel_shuffle(self.rsn_expand(g), 2))  # C/2 ch at H×W
        return DANetOutput(residual + _double(low), low, rain, mask)
