"""Tiled inference agrees with the whole-image run and shows no seam."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from derain import Deraining, WeightsNotAvailableError, create_model
from derain.tiling import pad_to_multiple, run_tiled, tile_grid, tile_starts


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
