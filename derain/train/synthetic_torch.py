"""Synthetic rain drawn in batches with PyTorch, on whatever device the crops are on.

The same model as :mod:`derain.train.synthetic` (veil, then layers of parallel streaks made by
convolving random seeds with a motion-blur segment and a Gaussian in the Fourier domain,
added or screen-blended, clipped, sometimes JPEG-compressed), drawn for a whole batch at once
from a :class:`torch.Generator` on the crops' device: nothing goes back to the host.

It agrees with the NumPy generator in distribution, not pixel by pixel (its random numbers
come from another generator, in another order); the NumPy one stays the reference, and the
one that keeps older runs bit-reproducible.

A preset is turned into per-image parameters by a *drawer*: :data:`DRAWERS` maps each kind
of preset (:class:`RainParams`, :class:`RainMix`, :class:`RainSpace`, :class:`RealSpace`) to a
function that draws the :class:`ParamBatch` of ``n`` images on the device. A new preset that is
an instance of one of these kinds needs nothing here; a new kind needs its drawer in
:data:`DRAWERS`.

``real`` (:class:`RealSpace`) draws its ``wide`` part with ``wide``'s drawer; then, as the NumPy
generator does after all the ``wide`` draws, :func:`draw_look` draws the real-look parameters
(a :class:`LookBatch`) and the synthesizer renders them between the blending and the JPEG.

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

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .synthetic import (
    FWHM_PER_SIGMA,
    LOOK_ENV_FRACTION,
    LOOK_FAR_FLOOR,
    LOOK_JITTER,
    LOOK_LIGHT_GRID,
    LOOK_NOISE_GREY,
    LOOK_NOISE_OFFSET,
    LOOK_SHARE,
    LUMA,
    MIN_ASPECT,
    Rain,
    RainMix,
    RainParams,
    RainSpace,
    RealSpace,
    _upsample_matrix,
    preset,
)

__all__ = ["DRAWERS", "BatchRainSynthesizer", "LookBatch", "ParamBatch", "draw_look", "jpeg_batch"]

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


@dataclass(frozen=True)
class LookBatch:
    """:class:`~derain.train.synthetic.RealLook` of ``n`` images as tensors.

    Per image (n,): ``on`` (the image gets the real-look part) and the scalars of
    :class:`~derain.train.synthetic.RealLook`; per image and layer (n, L), far first, L the
    preset's largest layer count: ``active`` and the :class:`~derain.train.synthetic.LookLayer`
    fields. An inactive layer, or any layer of an image without the look, draws nothing.
    """

    on: Tensor
    active: Tensor
    density: Tensor
    length: Tensor
    sigma: Tensor
    opacity: Tensor
    angle: Tensor
    sway: Tensor
    sway_period: Tensor
    sway_direction: Tensor
    sway_phase: Tensor
    light_gain: Tensor
    light_env: Tensor
    veil: Tensor
    veil_scale: Tensor
    noise: Tensor

    def take(self, index: Tensor) -> LookBatch:
        """The images at ``index`` only."""
        return LookBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


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


def _real(s: RealSpace, n: int, gen: torch.Generator, const: Constants) -> ParamBatch:
    """The ``wide`` part of ``real``: exactly ``base``'s draws (the look is drawn after)."""
    return _space(s.base, n, gen, const)


#: How each kind of preset draws the parameters of a batch: the one place a new kind is added.
DRAWERS: dict[type, Callable[..., ParamBatch]] = {
    RainParams: _fixed,
    RainMix: _mix,
    RainSpace: _space,
    RealSpace: _real,
}


def draw_look(s: RealSpace, angle: Tensor, gen: torch.Generator) -> LookBatch:
    """:meth:`RealSpace.look` for ``n`` images at once, ``angle`` (n,) their ``wide`` angles."""
    n, layers, dev = len(angle), s.layers[1], gen.device
    on = _uniform(gen, n) < s.look_p
    n_layers = torch.randint(s.layers[0], s.layers[1] + 1, (n,), generator=gen, device=dev)
    near_length = _log_uniform(s.length, gen, n)[:, None]
    far = _between(s.depth, gen, n)[:, None]
    near_width = _between(s.width, gen, n)[:, None]
    near_defocus = _log_uniform(s.defocus, gen, n)[:, None]
    coverage = _log_uniform(s.coverage, gen, n)
    index = torch.arange(layers, device=dev, dtype=torch.float32)[None]
    count = n_layers.float()[:, None]
    present = index < count
    share = _between(LOOK_SHARE, gen, n * layers).view(n, layers) * present
    share = share * (coverage[:, None] / share.sum(1, keepdim=True))
    # Visibility falls as 1/√exposure; the exposure is what sets the streak length.
    opacity = _log_uniform(s.opacity, gen, n)[:, None] * torch.sqrt(s.exposure_ref / near_length)
    # Far first, nearest at distance 1; the camera focuses on the farthest layer.
    z = torch.where(count > 1, far ** (1 - index / (count - 1).clamp(min=1)), 1.0)
    width = near_width / z
    defocus = near_defocus * (1 / z - 1 / far) / (1 - 1 / far)
    sigma = torch.hypot(width.clamp(min=s.min_width), defocus)
    length = near_length * _between(s.speed, gen, n * layers).view(n, layers) / z
    length = torch.maximum(length.clamp(min=s.min_length), s.min_aspect * FWHM_PER_SIGMA * sigma)
    footprint = length * (FWHM_PER_SIGMA * sigma).clamp(min=1.0)
    jitter = torch.randn((n, layers), generator=gen, device=dev) * s.angle_jitter
    veiled = (coverage >= s.veil_coverage) & (_uniform(gen, n) < s.veil_p)
    veil = torch.where(veiled, _between(s.veil, gen, n) * coverage / s.coverage[1], 0.0)
    noisy = _uniform(gen, n) < s.noise_p
    return LookBatch(
        on=on,
        active=present & on[:, None],
        density=share / footprint,
        length=length,
        sigma=sigma,
        opacity=(opacity * width / sigma).clamp(max=s.max_opacity),
        angle=angle[:, None] + jitter,
        sway=torch.tan(torch.deg2rad(_between(s.sway, gen, n))),
        sway_period=_log_uniform(s.sway_period, gen, n),
        sway_direction=_between((0.0, math.pi), gen, n),
        sway_phase=_between((0.0, 2 * math.pi), gen, n),
        light_gain=_log_uniform(s.light_gain, gen, n),
        light_env=_between(s.light_env, gen, n),
        veil=veil,
        veil_scale=_log_uniform(s.veil_scale, gen, n),
        noise=torch.where(noisy, _log_uniform(s.noise, gen, n), 0.0),
    )


def _cell_means(n: int, cells: int) -> np.ndarray:
    """cells×n matrix that averages ``n`` pixels over ``cells`` cells, as the NumPy model."""
    starts = (np.arange(cells) * n) // cells
    ends = np.append(starts[1:], n)
    m = np.zeros((cells, n), np.float32)
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        m[i, a:b] = 1.0 / (b - a)
    return m


def _gaussian_transfer(shape: tuple[int, int], sigma: Tensor) -> Tensor:
    """Fourier transfer of a Gaussian of σ ``sigma`` (n,), (n, H, W//2+1)."""
    fy = torch.fft.fftfreq(shape[0], device=sigma.device)[:, None]
    fx = torch.fft.rfftfreq(shape[1], device=sigma.device)[None, :]
    return torch.exp(-2 * math.pi**2 * sigma[:, None, None] ** 2 * (fx**2 + fy**2))


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
        self._light: dict[tuple[torch.device, tuple[int, int]], list[Tensor]] = {}

    def draw_params(self, n: int, gen: torch.Generator) -> ParamBatch:
        """The parameters of ``n`` images, drawn on ``gen``'s device."""
        return DRAWERS[type(self.params)](self.params, n, gen, self._const(gen.device))

    def _const(self, device: torch.device) -> Constants:
        if device not in self._constants:
            self._constants[device] = Constants(device)
        return self._constants[device]

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
        layer = self._streaks(shape, gen, rate, jit, length, sigma, angle, intensity * active)
        return torch.zeros((n, h, w), device=gen.device).index_add_(0, image, layer)

    def _streaks(
        self,
        shape: tuple[int, int],
        gen: torch.Generator,
        rate: Tensor,
        jitter: Tensor,
        length: Tensor,
        sigma: Tensor,
        angle: Tensor,
        peak_value: Tensor,
    ) -> Tensor:
        """One layer of parallel streaks per row of the (rows,) arguments, (rows, H, W) ≥ 0,
        an isolated streak peaking at ``peak_value``."""
        h, w = shape
        # Seeds: a Poisson process at ``rate`` per pixel, each seed of brightness
        # U(jitter, 1); counted per pixel, the rare pixel with several seeds gives them one.
        scatter = self.scatter_seeds
        if scatter if scatter is not None else gen.device.type == "cpu":
            seeds = _scattered_seeds(rate, jitter, shape, gen)
        else:
            seeds = _poisson_counts(rate, shape, gen)
            j = jitter[:, None, None]
            seeds *= j + (1 - j) * _uniform(gen, len(rate), h, w)
        transfer = _transfer(shape, length, sigma, angle)
        # Scale so that one isolated streak peaks at its value (kernel's spatial max = 1).
        peak = torch.fft.irfft2(transfer, s=shape).amax(dim=(-2, -1))
        layer = torch.fft.irfft2(torch.fft.rfft2(seeds).mul_(transfer), s=shape).clamp_(min=0)
        return layer.mul_((peak_value / peak)[:, None, None])

    def _light_matrices(self, shape: tuple[int, int], device: torch.device) -> list[Tensor]:
        """Cell-mean and bilinear-upsampling matrices of the local light, made once a shape."""
        key = (device, shape)
        if key not in self._light:
            mats = []
            for n in shape:
                cells = min(LOOK_LIGHT_GRID, n)
                mats += [_cell_means(n, cells), _upsample_matrix(n, cells)]
            self._light[key] = [torch.from_numpy(m).to(device) for m in mats]
        return self._light[key]

    def _streak_light(self, clean: Tensor, look: LookBatch) -> tuple[Tensor, Tensor]:
        """The environment light (n, 3) and the streak light (n, 3, H, W) of ``clean``."""
        n, _, h, w = clean.shape
        sub = clean[:, :, ::2, ::2].flatten(2)
        k = max(1, round(LOOK_ENV_FRACTION * sub.shape[-1]))
        luma = torch.einsum("c,ncm->nm", self._const(clean.device)(LUMA), sub)
        brightest = luma.topk(k, dim=1).indices[:, None].expand(n, 3, k)
        env = torch.gather(sub, 2, brightest).mean(2)
        mean_h, up_h, mean_w, up_w = self._light_matrices((h, w), clean.device)
        local = up_h @ (mean_h @ clean @ mean_w.T) @ up_w.T
        mix = look.light_env[:, None, None, None]
        light = look.light_gain[:, None, None, None] * (
            mix * env[:, :, None, None] + (1 - mix) * local
        )
        return env, light.clamp(max=1.0)

    def _render_look(
        self, rainy: Tensor, clean: Tensor, look: LookBatch, gen: torch.Generator, pick: bool
    ) -> Tensor:
        """:func:`~derain.train.synthetic.render_look` for a batch: veil, streak layers far to
        near blended toward the streak light and bent by the wind, sensor noise, clipped."""
        n, _, h, w = rainy.shape
        layers, dev = look.active.shape[1], gen.device
        env, light = self._streak_light(clean, look)
        # The veil: a smooth random field in [0, 1] per image (0 where there is none).
        noise = torch.randn((n, h, w), generator=gen, device=dev)
        transfer = _gaussian_transfer((h, w), look.veil_scale)
        field = torch.fft.irfft2(torch.fft.rfft2(noise) * transfer, s=(h, w))
        field = field - field.amin(dim=(1, 2), keepdim=True)
        field = field / field.amax(dim=(1, 2), keepdim=True).clamp(min=1e-12)
        strength = (look.veil[:, None, None] * field)[:, None]
        out = rainy * (1 - strength) + env[:, :, None, None] * strength
        # The streaks, one row per (image, layer); with ``pick`` only the active ones.
        rows = [
            look.density * look.active,
            look.length,
            look.sigma,
            look.angle,
            look.opacity * look.active,
        ]
        rate, length, sigma, angle, opacity = [r.flatten() for r in rows]
        jitter = torch.full_like(rate, LOOK_JITTER)
        if pick:
            keep = look.active.flatten().nonzero().squeeze(1)
            kept = [r[keep] for r in (rate, jitter, length, sigma, angle, opacity)]
            part = self._streaks((h, w), gen, *kept)
            alpha = torch.zeros((n * layers, h, w), device=dev).index_copy_(0, keep, part)
        else:
            alpha = self._streaks((h, w), gen, rate, jitter, length, sigma, angle, opacity)
        alpha = alpha.view(n, layers, h, w)
        thin = LOOK_FAR_FLOOR + (1 - LOOK_FAR_FLOOR) * field
        alpha[:, 0] *= torch.where(look.veil[:, None, None] > 0, thin, 1.0)
        # Wind: a smooth sideways wave (wrapping around) whose steepest slope is ``sway``.
        y = torch.arange(h, device=dev, dtype=torch.float32)[None, :, None]
        x = torch.arange(w, device=dev, dtype=torch.float32)[None, None, :]
        period = look.sway_period[:, None, None]
        amplitude = look.sway[:, None, None] * period / (2 * math.pi)
        direction = look.sway_direction[:, None, None]
        along = y * torch.cos(direction) + x * torch.sin(direction)
        phase = 2 * math.pi * along / period + look.sway_phase[:, None, None]
        src = x - amplitude * torch.sin(phase)
        x0 = torch.floor(src)
        frac = (src - x0)[:, None]
        i0 = (x0.long() % w)[:, None].expand(n, layers, h, w)
        a0 = torch.gather(alpha, 3, i0)
        alpha = a0 + (torch.gather(alpha, 3, (i0 + 1) % w) - a0) * frac
        for i in range(layers):
            out = out + alpha[:, i, None].clamp(max=1.0) * (light - out)
        # Shot-like sensor noise: σ grows as √brightness, ``noise`` at mid-grey.
        sd = look.noise[:, None, None, None] * torch.sqrt(
            (out + LOOK_NOISE_OFFSET) / LOOK_NOISE_GREY
        )
        out = out + sd * torch.randn(out.shape, generator=gen, device=dev)
        return out.clamp(0.0, 1.0)

    def add_look(
        self,
        rainy: Tensor,
        clean: Tensor,
        angle: Tensor,
        gen: torch.Generator,
        pick: bool | None = None,
    ) -> Tensor:
        """``real``'s real-look part on top of the ``wide``-rained batch (others: unchanged).

        Args:
            rainy: the ``wide`` rain over ``clean``, blended and clipped, (n, 3, H, W).
            clean: the crops without rain, where the streak light comes from.
            angle: each image's ``wide`` angle (n,), which the layers follow.
            gen: the generator, on the crops' device.
            pick: render only the images and layers that have the look (their indices are
                read back), or render all and mask. By default: picked on a CPU, masked on an
                accelerator, where a read-back would make the host wait.
        """
        if not isinstance(self.params, RealSpace):
            return rainy
        look = draw_look(self.params, angle, gen)
        if not (pick if pick is not None else gen.device.type == "cpu"):
            looked = self._render_look(rainy, clean, look, gen, pick=False)
            return torch.where(look.on[:, None, None, None], looked, rainy)
        index = look.on.nonzero().squeeze(1)
        if not len(index):
            return rainy
        looked = self._render_look(rainy[index], clean[index], look.take(index), gen, pick=True)
        return rainy.index_copy(0, index, looked)

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
        # ``real``: drawn after every ``wide`` draw, so its ``wide`` part is ``wide``'s.
        out = self.add_look(out, clean.float(), p.angle[:, 0], gen)
        jpeg = jpeg_batch(out, quality, self._const(gen.device))
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
