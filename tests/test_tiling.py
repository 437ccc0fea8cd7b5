"""Tiled inference agrees with the whole-image run and shows no seam."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from derain import (
    DANet,
    DANetConfig,
    DerainError,
    Deraining,
    WeightsNotAvailableError,
    create_model,
)
from derain.tiling import (
    CPU_AUTO_TILE,
    CUDA_MEMORY_SHARE,
    CUDA_TILE_STEP,
    IMAGE_BYTES_PER_PIXEL,
    MIN_TILE,
    MemoryCost,
    TilePlan,
    pad_to_multiple,
    parse_tile,
    run_tiled,
    tile_grid,
    tile_starts,
)


@pytest.mark.parametrize("size", [1, 2, 5, 15, 16, 17, 100])
def test_pad_to_multiple(size: int) -> None:
    x = torch.rand(1, 3, size, size + 3)
    y = pad_to_multiple(x, 16)
    assert y.shape[-2] % 16 == 0 and y.shape[-1] % 16 == 0
    assert torch.equal(y[..., :size, : size + 3], x)


def test_tile_starts_cover_everything() -> None:
    assert tile_starts(100, 256, 32) == [0]  # smaller than a tile: one (cropped) tile
    for size in (512, 513, 1000, 1024):
        starts = tile_starts(size, 256, 32)
        assert starts[0] == 0 and starts[-1] + 256 == size
        assert all(b - a <= 256 - 32 for a, b in itertools.pairwise(starts))


def test_blend_is_a_partition_of_unity() -> None:
    # With an identity "network" every blended pixel must come back unchanged.
    x = torch.rand(1, 3, 300, 200)
    y = run_tiled(lambda t: t, x, tile=96, overlap=24, multiple=16)
    assert torch.allclose(x, y, atol=1e-6)


def _photo(h: int, w: int) -> np.ndarray:
    """Smooth structure plus fine texture: something with edges at every scale."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack(
        [0.5 + 0.3 * np.sin(x / 37), 0.5 + 0.3 * np.cos(y / 23), 0.5 + 0.2 * np.sin((x + y) / 11)],
        axis=2,
    )
    img += np.random.default_rng(0).normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("tile", [256, 512])
def test_tiled_run_matches_whole_image_without_seams(tile: int) -> None:
    # Trained weights: a random network's output depends wildly on context (its channel
    # attention pools over the whole input), which says nothing about the real model.
    try:
        net = create_model("danet", pretrained=True)
    except WeightsNotAvailableError:
        pytest.skip("no shipped danet weights")
    img = _photo(768, 1024)
    whole = Deraining(net, device="cpu", tile=None).run(img)
    overlap = 32  # the default
    tiled = Deraining(net, device="cpu", tile=tile, overlap=overlap).run(img)
    assert tiled.shape == whole.shape
    # Agreement: a tile sees less context than the whole image, and DANet's channel attention
    # pools globally, so values may drift a little; the mean absolute difference must stay
    # below 1/255 (one 8-bit level), i.e. invisible after quantisation.
    diff = np.abs(tiled - whole).mean(axis=2)
    assert diff.mean() < 1 / 255

    # Seams: a seam is a jump between adjacent columns (rows) that the whole-image result does
    # not have. At every column (row) boundary in the overlap bands, take the tiled result's
    # step minus the whole-image result's step, averaged along the line: a visible seam is a
    # consistent extra jump of several levels all along a tile border.
    ys, xs, _, _ = tile_grid(768, 1024, tile, overlap, 16)

    def border_excess(axis: int, starts: list[int]) -> float:
        step = np.abs(np.diff(tiled, axis=axis)).mean(axis=2)
        ref = np.abs(np.diff(whole, axis=axis)).mean(axis=2)
        excess = (step - ref).mean(axis=1 - axis)  # per column (row) boundary
        # blending spreads any mismatch over the overlap; look across the whole overlap band
        band = [b for s in starts[1:] for b in range(s - 1, s + overlap)]
        return float(np.abs(excess[band]).max())

    # threshold: 2/255 of extra step, averaged along the whole border (a visible seam is a
    # consistent jump of several levels along the line)
    assert border_excess(1, xs) < 2 / 255
    assert border_excess(0, ys) < 2 / 255


# --- the tile plan ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [("auto", "auto"), ("AUTO", "auto"), ("none", None), (None, None), ("512", 512), (64, 64)],
)
def test_parse_tile_accepts_the_api_and_cli_spellings(given: object, expected: object) -> None:
    assert parse_tile(given) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["7", 63, "-64", "big", True, 1.5])
def test_parse_tile_refuses_the_rest_in_one_line(bad: object) -> None:
    with pytest.raises(DerainError, match=f"integer >= {MIN_TILE}"):
        parse_tile(bad)  # type: ignore[arg-type]


def _never() -> MemoryCost:
    raise AssertionError("the memory cost is only needed on CUDA with tile='auto'")


def test_plan_on_the_cpu_and_as_asked() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert TilePlan.choose("auto", cpu, _never, (4000, 3000)).tile == CPU_AUTO_TILE
    assert TilePlan.choose(256, cuda, _never) == TilePlan(256, "asked for")
    assert TilePlan.choose(None, cuda, _never).tile is None


#: A cost like a network's: 300 MiB of workspace and 2 KiB per pixel.
COST = MemoryCost(fixed=300 * 2**20, per_pixel=2048.0, how="measured")


def test_the_whole_image_runs_when_it_fits_the_memory_budget() -> None:
    free = 80 * 2**30  # half of it: 40 GiB, ~20 megapixels at 2 KiB each
    plan = TilePlan.for_memory(free, COST, (4320, 7680))  # 8K: 33 megapixels, 66 GiB
    assert plan.tile is not None and "largest tile" in plan.reason
    assert COST.bytes_for(plan.tile**2) <= CUDA_MEMORY_SHARE * free
    assert COST.bytes_for((plan.tile + CUDA_TILE_STEP) ** 2) > CUDA_MEMORY_SHARE * free
    assert plan.tile % CUDA_TILE_STEP == 0
    whole = TilePlan.for_memory(free, COST, (2160, 3840))  # 4K: 8.3 megapixels, 16 GiB
    assert whole.tile is None and "whole image fits" in whole.reason
    assert "80.0 GiB free, cost measured" in whole.reason


def test_plan_from_free_memory_is_bounded_and_rounded() -> None:
    assert TilePlan.for_memory(1 << 20, COST, (1000, 1000)).tile == MIN_TILE
    assert TilePlan.for_memory(1 << 20, COST).tile == MIN_TILE  # no size: a tile
    mid = TilePlan.for_memory(8 << 30, MemoryCost.estimate(channels=48))
    assert mid.tile is not None and mid.tile % CUDA_TILE_STEP == 0 and mid.tile > MIN_TILE
    assert "cost estimated" in mid.reason


def test_cuda_auto_reads_the_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (80 * 2**30, 141 * 2**30))
    cuda = torch.device("cuda")
    assert TilePlan.choose("auto", cuda, lambda: COST, (2160, 3840)).tile is None
    assert TilePlan.choose("auto", cuda, lambda: COST, (4320, 7680)).tile is not None


def test_the_memory_cost_is_measured_as_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # A device whose peak memory is 100 MiB + 1500 bytes per pixel of the input.
    fixed, per_pixel = 100 * 2**20, 1500
    state = {"peak": 0, "allocated": 12345}

    def forward(x: torch.Tensor) -> None:
        state["peak"] = state["allocated"] + fixed + per_pixel * x.shape[-2] * x.shape[-1]

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: state["peak"])
    cost = MemoryCost.measure(forward, torch.device("cpu"), multiple=16)
    assert cost.fixed == pytest.approx(fixed)
    assert cost.per_pixel == pytest.approx(per_pixel + IMAGE_BYTES_PER_PIXEL)
    assert cost.how == "measured"


def test_deraining_plans_from_the_image_size(monkeypatch: pytest.MonkeyPatch) -> None:
    d = Deraining(DANet(DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)), tile="auto")
    assert d.device.type == "cpu"
    assert d.tile_plan((4000, 3000)).tile == CPU_AUTO_TILE
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (80 * 2**30, 141 * 2**30))
    monkeypatch.setattr(d.engine, "device", torch.device("cuda"))
    d.__dict__["_memory_cost"] = COST  # what a GPU would have measured
    assert d.tile_plan((2160, 3840)).tile is None
    assert d.tile_plan((4320, 7680)).tile is not None


def test_out_of_memory_halves_until_the_smallest_tile() -> None:
    plan = TilePlan(None, "tiling off").halved(image_side=300)
    assert plan.tile == 150
    assert plan.halved(300).tile == 75
    with pytest.raises(DerainError, match="smallest tile"):
        TilePlan(MIN_TILE, "asked for").halved(300)
