"""Tiled inference agrees with the whole-image run and shows no seam."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from derain import DerainError, Deraining, WeightsNotAvailableError, create_model
from derain.tiling import (
    CPU_AUTO_TILE,
    CUDA_MAX_AUTO_TILE,
    CUDA_TILE_STEP,
    MIN_TILE,
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


def test_plan_on_the_cpu_and_as_asked() -> None:
    cpu = torch.device("cpu")
    assert TilePlan.choose("auto", cpu, channels=48).tile == CPU_AUTO_TILE
    assert TilePlan.choose(256, cpu, channels=48) == TilePlan(256, "asked for")
    assert TilePlan.choose(None, cpu, channels=48).tile is None


def test_plan_from_free_memory_is_bounded_and_rounded() -> None:
    small = TilePlan.for_memory(free_bytes=1 << 20, channels=48)
    assert small.tile == MIN_TILE
    huge = TilePlan.for_memory(free_bytes=1 << 40, channels=48)
    assert huge.tile == CUDA_MAX_AUTO_TILE
    mid = TilePlan.for_memory(free_bytes=8 << 30, channels=48)
    assert mid.tile is not None and mid.tile % CUDA_TILE_STEP == 0
    assert MIN_TILE < mid.tile < CUDA_MAX_AUTO_TILE
    assert "GiB free" in mid.reason


def test_out_of_memory_halves_until_the_smallest_tile() -> None:
    plan = TilePlan(None, "tiling off").halved(image_side=300)
    assert plan.tile == 150
    assert plan.halved(300).tile == 75
    with pytest.raises(DerainError, match="smallest tile"):
        TilePlan(MIN_TILE, "asked for").halved(300)
