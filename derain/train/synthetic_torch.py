"""Synthetic rain drawn in batches with PyTorch, on whatever device the crops are on.

The same model as :mod:`derain.train.synthetic` (veil, then layers of parallel streaks made by
convolving random seeds with a motion-blur segment and a Gaussian in the Fourier domain,
added or screen-blended, clipped, sometimes JPEG-compressed), drawn for a whole batch at once
from a :class:`torch.Generator` on the crops' device: nothing goes back to the host.

It agrees with the NumPy generator in distribution, not pixel by pixel (its random numbers
come from another generator, in another order); the NumPy one stays the reference, and the
one that keeps older runs bit-reproducible.

A preset is turned into per-image parameters by a *drawer*: :data:`DRAWERS` maps each kind
of preset (:class:`RainParams`, :class:`RainMix`, :class:`RainSpace`) to a function that
draws the :class:`ParamBatch` of ``n`` images on the device. A new preset that is an instance
of one of these kinds needs nothing here; a new kind needs its drawer in :data:`DRAWERS`.

Example:
    >>> import torch
    >>> synth = BatchRainSynthesizer("wide")
    >>> clean = torch.full((2, 3, 32, 32), 0.4)
    >>> rainy = synth(clean, torch.Generator().manual_seed(0))
    >>> rainy.shape, bool(rainy.mean() > clean.mean())
    (torch.Size([2, 3, 32, 32]), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .synthetic import FWHM_PER_SIGMA, MIN_ASPECT, Rain, RainMix, RainParams, RainSpace, preset

__all__ = ["DRAWERS", "BatchRainSynthesizer", "ParamBatch", "jpeg_batch"]

#: Std of the per-layer depth jitter and the far layers' density bonus, as in the NumPy model.
DEPTH_JITTER = 0.15
FAR_DENSITY_BONUS = 1.5
MAX_SEEDS_PER_PIXEL = 4
INTENSITY_JITTER_RANGE = (0.2, 0.8)  # RainSpace's per-image streak-brightness jitter


@dataclass(frozen=True)
class ParamBatch:
    """:class:`RainParams` of ``n`` images as tensors: ranges are (n, 2), scalars (n,).

    ``max_layers`` is the largest layer count any image can draw, known on the host so the
    batch's layer axis has a fixed size without asking the device.
    """

    density: Tensor
    layers: Tensor
    length: Tensor
    width: Tensor
    intensity: Tensor
    intensity_jitter: Tensor
    angle: Tensor
    angle_spread: Tensor
    defocus: Tensor
    veil: Tensor
    airlight: Tensor
    screen: Tensor
    jpeg: Tensor
    jpeg_quality: Tensor
    max_layers: int


class Constants:
    """Constant tensors on one device, made once: copying a host value to an accelerator at
    every batch would make the host wait there."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._made: dict[Any, Tensor] = {}

    def __call__(self, value: Any) -> Tensor:
        """``value`` (a number or nested tuples of numbers) as a float32 tensor."""
        if value not in self._made:
            self._made[value] = torch.tensor(value, dtype=torch.float32, device=self.device)
        return self._made[value]


def _uniform(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(shape, generator=gen, device=gen.device)


def _fixed(p: RainParams, n: int, gen: torch.Generator, const: Constants) -> ParamBatch:
    """Every image draws from the same ranges."""
    values = {}
    for f in fields(p):
        v = const(getattr(p, f.name))
        values[f.name] = v.expand(n, *v.shape)
    return ParamBatch(**values, max_layers=p.layers[1])


def _mix(mix: RainMix, n: int, gen: torch.Generator, const: Constants) -> ParamBatch:
    """Per image, ``low``, ``high`` or a uniform blend of the two (each with probability 1/3)."""
    low, high = _fixed(mix.low, n, gen, const), _fixed(mix.high, n, gen, const)
    case = torch.randint(0, 3, (n,), generator=gen, device=gen.device)
    u = torch.where(case == 2, _uniform(gen, n), case.clamp(max=1).float())
    values = {}
    for f in fields(RainParams):
        a, b = getattr(low, f.name), getattr(high, f.name)
        values[f.name] = a + (b - a) * (u if a.ndim == 1 else u[:, None])
    for name in ("layers", "jpeg_quality"):  # counts and qualities stay integers
        values[name] = torch.round(values[name])
    return ParamBatch(**values, max_layers=max(mix.low.layers[1], mix.high.layers[1]))


def _log_uniform(r: tuple[float, float], gen: torch.Generator, n: int) -> Tensor:
    lo, hi = math.log(r[0]), math.log(r[1])
    return torch.exp(lo + (hi - lo) * _uniform(gen, n))


def _between(r: tuple[float, float], gen: torch.Generator, n: int) -> Tensor:
    return r[0] + (r[1] - r[0]) * _uniform(gen, n)


def _space(s: RainSpace, n: int, gen: torch.Generator, const: Constants) -> ParamBatch:
    """:meth:`RainSpace.sample` for ``n`` images at once."""
    dev = gen.device
    length = _log_uniform(s.length, gen, n)
    sigma = _log_uniform(s.width, gen, n)
    length = torch.maximum(length, MIN_ASPECT * FWHM_PER_SIGMA * sigma)
    intensity = _log_uniform(s.intensity, gen, n)
    far = _between(s.far_ratio, gen, 3 * n).view(3, n)
    coverage = _log_uniform(s.coverage, gen, n)
    visible = torch.clamp(FWHM_PER_SIGMA * sigma * (1 + far[1]) / 2, min=1.0)
    footprint = length * (1 + far[0]) / 2 * visible
    wide = _uniform(gen, n) < s.wide_angle_p
    angle = torch.where(wide, _between(s.wide_angle, gen, n), _between(s.angle, gen, n))
    veil = torch.where(_uniform(gen, n) < s.veil_p, _between(s.veil, gen, n), 0.0)
    airlight = _between(s.airlight, gen, n)
    n_layers = torch.randint(s.layers[0], s.layers[1] + 1, (n,), generator=gen, device=dev)

    def pair(a: Tensor, b: Tensor | None = None) -> Tensor:
        return torch.stack((a, a if b is None else b), dim=1)

    def each(value: float | tuple[int, int]) -> Tensor:
        v = const(value)
        return v.expand(n, *v.shape)

    return ParamBatch(
        density=pair(coverage / footprint),
        layers=pair(n_layers.float()),
        length=pair(length * far[0], length),
        width=pair(sigma * far[1], sigma),
        intensity=pair(intensity * far[2], intensity),
        intensity_jitter=_between(INTENSITY_JITTER_RANGE, gen, n),
        angle=pair(angle),
        angle_spread=_between(s.angle_spread, gen, n),
        defocus=pair(_between(s.defocus, gen, n)),
        veil=pair(veil),
        airlight=pair(airlight),
        screen=each(s.screen),
        jpeg=each(s.jpeg),
        jpeg_quality=each(s.jpeg_quality),
        max_layers=s.layers[1],
    )


#: How each kind of preset draws the parameters of a batch: the one place a new kind is added.
DRAWERS: dict[type, Callable[..., ParamBatch]] = {
    RainParams: _fixed,
    RainMix: _mix,
    RainSpace: _space,
}


def _draw(r: Tensor, u: Tensor) -> Tensor:
    """``r[..., 0] + (r[..., 1] − r[..., 0])·u`` with ``r`` (n, 2) broadcast against ``u``."""
    lo, hi = r[:, 0], r[:, 1]
    while lo.ndim < u.ndim:
        lo, hi = lo[..., None], hi[..., None]
    return lo + (hi - lo) * u


def _poisson_counts(rate: Tensor, shape: tuple[int, int], gen: torch.Generator) -> Tensor:
    """Poisson counts at ``rate`` (…) on every pixel of ``shape``, by inverting the CDF.

    One uniform per pixel; counts above :data:`MAX_SEEDS_PER_PIXEL` are cut (at the densest
    rain the presets draw, a rate of about 0.5, that is one pixel in 6,000).
    """
    u = _uniform(gen, *rate.shape, *shape)
    r = rate[..., None, None]
    term = torch.exp(-r)  # P(c = 0)
    cdf = term
    count = (u > cdf).float()
    for k in range(1, MAX_SEEDS_PER_PIXEL):
        term = term * r / k
        cdf = cdf + term
        count += u > cdf
    return count


def _scattered_seeds(
    rate: Tensor, jitter: Tensor, shape: tuple[int, int], gen: torch.Generator
) -> Tensor:
    """Seeds as the NumPy generator places them: a Poisson number per row of ``rate``, each
    at a uniform pixel with brightness U(jitter, 1), summed where they meet; (rows, H, W)."""
    pixels = shape[0] * shape[1]
    counts = torch.poisson(rate * pixels, generator=gen).long()
    row = torch.repeat_interleave(torch.arange(len(rate), device=rate.device), counts)
    where = row * pixels + torch.randint(0, pixels, row.shape, generator=gen, device=gen.device)
    weight = jitter[row] + (1 - jitter[row]) * _uniform(gen, len(row))
    seeds = torch.zeros(len(rate) * pixels, device=rate.device).index_add_(0, where, weight)
    return seeds.view(len(rate), *shape)


def _transfer(shape: tuple[int, int], length: Tensor, sigma: Tensor, angle_deg: Tensor) -> Tensor:
    """Fourier transfer of a motion-blur segment × Gaussian, (…, H, W//2+1), real."""
    h, w = shape
    fy = torch.fft.fftfreq(h, device=length.device)[:, None]
    fx = torch.fft.rfftfreq(w, device=length.device)[None, :]
    a = torch.deg2rad(angle_deg)[..., None, None]
    along = fx * torch.sin(a) + fy * torch.cos(a)
    gauss = torch.exp(-2 * math.pi**2 * sigma[..., None, None] ** 2 * (fx**2 + fy**2))
    return torch.sinc(length[..., None, None] * along) * gauss


class BatchRainSynthesizer:
    """Adds synthetic rain to a batch of clean crops on their device.

    Args:
        params: a preset name or parameters, as :class:`~derain.train.synthetic.RainSynthesizer`
            takes.
        scatter_seeds: place each streak seed at a drawn pixel (as the NumPy generator does;
            cheap, but the number of seeds is read back), or draw a seed count for every
            pixel (no read-back, more work). By default: placed on a CPU, counted on an
            accelerator, where a read-back would make the host wait.

    Raises:
        ValueError: an unknown preset name, or a kind of preset with no drawer.
    """

    def __init__(self, params: str | Rain = "wide", scatter_seeds: bool | None = None) -> None:
        self.params = preset(params) if isinstance(params, str) else params
        self.scatter_seeds = scatter_seeds
        if type(self.params) not in DRAWERS:
            raise ValueError(f"no batched drawer for {type(self.params).__name__} presets")
        self._constants: dict[torch.device, Constants] = {}

    def draw_params(self, n: int, gen: torch.Generator) -> ParamBatch:
        """The parameters of ``n`` images, drawn on ``gen``'s device."""
        if gen.device not in self._constants:
            self._constants[gen.device] = Constants(gen.device)
        return DRAWERS[type(self.params)](self.params, n, gen, self._constants[gen.device])

    def rain_layers(self, shape: tuple[int, int], gen: torch.Generator, p: ParamBatch) -> Tensor:
        """The additive rain (n, H, W), ≥ 0, of each image, before compositing."""
        n, layers = p.density.shape[0], p.max_layers
        h, w = shape
        n_layers = p.layers[:, 0] + torch.floor(
            _uniform(gen, n) * (p.layers[:, 1] - p.layers[:, 0] + 1)
        )
        n_layers = torch.minimum(n_layers, p.layers[:, 1])
        density = _draw(p.density, _uniform(gen, n))
        mean_angle = _draw(p.angle, _uniform(gen, n))
        defocus = _draw(p.defocus, _uniform(gen, n))
        index = torch.arange(layers, device=gen.device, dtype=torch.float32)
        active = index[None] < n_layers[:, None]  # (n, L)
        depth = (index[None] + _uniform(gen, n, layers)) / n_layers[:, None]  # 0 far … 1 near
        weight = (FAR_DENSITY_BONUS - depth) * active
        weight = weight / weight.sum(1, keepdim=True)
        jitter = torch.randn((3, n, layers), generator=gen, device=gen.device) * DEPTH_JITTER
        u = (depth[None] + jitter).clamp(0.0, 1.0)
        sigma = torch.hypot(_draw(p.width, u[1]), defocus[:, None] * depth**2)
        length = _draw(p.length, u[0])
        intensity = _draw(p.intensity, u[2])
        spread = torch.randn((n, layers), generator=gen, device=gen.device)
        angle = mean_angle[:, None] + spread * p.angle_spread[:, None]
        # One row per (image, layer). A CPU computes only the layers an image has; an
        # accelerator computes them all (inactive ones weigh 0), as picking them out would
        # make it wait for the host.
        image = torch.arange(n, device=gen.device).repeat_interleave(layers)
        rows = [density[:, None] * weight, length, sigma, angle, intensity, active]
        rows = [r.flatten() for r in rows]
        jit = p.intensity_jitter[image]
        if gen.device.type == "cpu":
            keep = rows[-1].nonzero().squeeze(1)
            rows, image, jit = [r[keep] for r in rows], image[keep], jit[keep]
        rate, length, sigma, angle, intensity, active = rows
        # Seeds: a Poisson process at density·weight per pixel, each seed of brightness
        # U(jitter, 1); counted per pixel, the rare pixel with several seeds gives them one.
        scatter = self.scatter_seeds
        if scatter if scatter is not None else gen.device.type == "cpu":
            seeds = _scattered_seeds(rate, jit, (h, w), gen)
        else:
            seeds = _poisson_counts(rate, (h, w), gen)
            seeds *= jit[:, None, None] + (1 - jit[:, None, None]) * _uniform(gen, len(rate), h, w)
        transfer = _transfer(shape, length, sigma, angle)
        # Scale so that one isolated streak peaks at its intensity (kernel's spatial max = 1).
        peak = torch.fft.irfft2(transfer, s=shape).amax(dim=(-2, -1))
        layer = torch.fft.irfft2(torch.fft.rfft2(seeds).mul_(transfer), s=shape).clamp_(min=0)
        layer *= ((intensity / peak) * active)[:, None, None]
        return torch.zeros((n, h, w), device=gen.device).index_add_(0, image, layer)

    def synthesize(self, clean: Tensor, gen: torch.Generator) -> Tensor:
        """Return ``clean`` (n, 3, H, W in [0, 1]) with rain, float32, on the same device.

        Raises:
            ValueError: ``clean`` is not (n, 3, H, W), or ``gen`` is on another device.
        """
        if clean.ndim != 4 or clean.shape[1] != 3:
            raise ValueError(f"expected an (n, 3, H, W) batch, got shape {tuple(clean.shape)}")
        if gen.device.type != clean.device.type:
            raise ValueError(f"generator on {gen.device}, crops on {clean.device}")
        n, _, h, w = clean.shape
        p = self.draw_params(n, gen)
        t = (1.0 - _draw(p.veil, _uniform(gen, n)))[:, None, None, None]
        airlight = _draw(p.airlight, _uniform(gen, n))[:, None, None, None]
        rain = self.rain_layers((h, w), gen, p)[:, None]
        out = clean.float() * t + airlight * (1 - t)
        screen = (_uniform(gen, n) < p.screen)[:, None, None, None]
        out = out + torch.where(screen, rain.clamp(max=1.0) * (1.0 - out), rain)
        out = out.clamp(0.0, 1.0)
        compress = _uniform(gen, n) < p.jpeg
        q_lo, q_hi = p.jpeg_quality[:, 0], p.jpeg_quality[:, 1]
        quality = q_lo + torch.floor(_uniform(gen, n) * (q_hi - q_lo + 1))
        jpeg = jpeg_batch(out, quality, self._constants[gen.device])
        return torch.where(compress[:, None, None, None], jpeg, out)

    __call__ = synthesize


# --- JPEG, batched: the lossy part of baseline JPEG (the entropy coding is lossless) ------

_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8,) * 4,
)
_BLOCK = 8
_RGB_TO_YCC = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)


def _dct2() -> tuple[tuple[float, ...], ...]:
    """The orthonormal 2-D DCT of an 8×8 block as a 64×64 matrix (Kronecker square of the
    1-D one), so each direction is one matrix product over all blocks."""
    one = [
        [
            math.cos((2 * x + 1) * k * math.pi / (2 * _BLOCK))
            * math.sqrt((1 if k else 0.5) * 2 / _BLOCK)
            for x in range(_BLOCK)
        ]
        for k in range(_BLOCK)
    ]
    return tuple(
        tuple(one[k // _BLOCK][x // _BLOCK] * one[k % _BLOCK][x % _BLOCK] for x in range(64))
        for k in range(64)
    )


_DCT2 = _dct2()
_YCC_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def _quant_tables(quality: Tensor, const: Constants) -> tuple[Tensor, Tensor]:
    """libjpeg's tables at each image's quality, (n, 64) each (row-major 8×8)."""
    q = quality.clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)[:, None]
    tables = []
    for base in (_LUMA_TABLE, _CHROMA_TABLE):
        t = const(base).flatten()
        tables.append(torch.floor((t * scale + 50) / 100).clamp(1, 255))
    return tables[0], tables[1]


def _blocks_roundtrip(plane: Tensor, table: Tensor, dct2: Tensor) -> Tensor:
    """DCT, quantise, dequantise and invert every 8×8 block of (n, c, H, W), H, W % 8 == 0.

    ``dct2`` is the 64×64 2-D DCT (Kronecker product of the 1-D one), so each direction is
    one matrix product over all blocks; ``table`` is (n, 64).
    """
    n, c, h, w = plane.shape
    b = plane.reshape(n, c, h // _BLOCK, _BLOCK, w // _BLOCK, _BLOCK).transpose(3, 4)
    flat = b.reshape(n, -1, _BLOCK * _BLOCK) - 128.0
    coef = flat @ dct2.T
    step = table[:, None, :]
    b = (torch.round(coef / step) * step) @ dct2 + 128.0
    b = b.view(n, c, h // _BLOCK, w // _BLOCK, _BLOCK, _BLOCK).transpose(3, 4)
    return b.reshape(n, c, h, w)


def jpeg_batch(images: Tensor, quality: Tensor, const: Constants | None = None) -> Tensor:
    """Each image (n, 3, H, W in [0, 1]) through JPEG's lossy steps at its own quality.

    8-bit rounding, YCbCr, 4:2:0 chroma (2×2 mean down, bilinear up, as libjpeg's default
    and its "fancy" upsampling), 8×8 DCT quantised with libjpeg's quality-scaled tables.
    """
    h, w = images.shape[-2:]
    const = const or Constants(images.device)
    dct2 = const(_DCT2)
    luma_q, chroma_q = _quant_tables(quality.float(), const)
    rgb = torch.round(images.float() * 255)
    ycc = torch.einsum("kc,nchw->nkhw", const(_RGB_TO_YCC), rgb)
    ycc[:, 1:] += 128.0
    pad_h, pad_w = -h % (2 * _BLOCK), -w % (2 * _BLOCK)
    ycc = F.pad(ycc, (0, pad_w, 0, pad_h), mode="replicate")
    y = _blocks_roundtrip(ycc[:, :1], luma_q, dct2)
    chroma = F.avg_pool2d(ycc[:, 1:], 2)
    chroma = _blocks_roundtrip(chroma, chroma_q, dct2)
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    ycc = torch.cat((y, chroma), 1)[:, :, :h, :w]
    ycc[:, 1:] -= 128.0
    rgb = torch.einsum("kc,nchw->nkhw", const(_YCC_TO_RGB), ycc)
    return (torch.round(rgb).clamp(0, 255) / 255.0).to(images.dtype)
