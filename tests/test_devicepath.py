"""The device path: one upload, the arithmetic where the network runs, one download.

Run here on CPU tensors; the results must match the host path it replaced (float32 conversion,
tiling, blending and quantisation in numpy and on host tensors) within 1/255.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from derain import DANet, DANetConfig, DerainError, Deraining, DerainWarning
from derain.devicepath import download, quantize, upload
from derain.tiling import run_tiled

TINY = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)
CPU = torch.device("cpu")


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _host_path(d: Deraining, rgb8: np.ndarray) -> np.ndarray:
    """What ``run`` did before the device path: float32 on the host, blended on the host."""
    x = torch.from_numpy(rgb8.astype(np.float32) / np.float32(255)).permute(2, 0, 1)[None]

    def tile(t: torch.Tensor) -> torch.Tensor:
        return d.engine.forward(t, with_layers=False)[0].float()

    with torch.inference_mode():
        out = run_tiled(tile, x, d.tile_size(), d.overlap, d.size_multiple)
    rgb = out[0].permute(1, 2, 0).numpy()
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def test_uint8_pixels_make_the_round_trip_exactly() -> None:
    rgb = _rgb(17, 23)
    x = upload(rgb, CPU)
    assert x.shape == (1, 3, 17, 23) and x.dtype == torch.float32
    assert np.array_equal(download(x, as_uint8=True), rgb)


def test_float_pixels_come_back_clamped() -> None:
    rgb = np.random.default_rng(1).random((9, 11, 3)).astype(np.float32)
    x = upload(rgb, CPU) * 1.5 - 0.25
    back = download(torch.cat([x, x[:, :1]], 1), as_uint8=False)
    assert back.shape == (9, 11, 4) and back.dtype == np.float32
    assert back[..., :3].min() == 0.0 and back[..., :3].max() == 1.0
    assert back[..., 3].min() < 0.0  # the extra channels (rain, mask) are not clamped


def test_quantize_rounds_like_numpy() -> None:
    values = torch.linspace(-0.1, 1.1, 10_001)
    expected = np.rint(np.clip(values.numpy(), 0.0, 1.0) * 255).astype(np.uint8)
    assert np.array_equal(quantize(values).numpy(), expected)


def test_a_read_only_array_is_used_without_a_warning_and_never_written() -> None:
    rgb = _rgb(8, 8)
    rgb.flags.writeable = False
    copy = rgb.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        download(upload(rgb, CPU), as_uint8=True)
    assert np.array_equal(rgb, copy)


def test_tiles_are_blended_where_the_network_output_lies() -> None:
    # A network whose output lives on another device: the accumulators must follow it.
    image = torch.rand(1, 3, 150, 200)
    out = run_tiled(lambda t: t.to("meta"), image, tile=96, overlap=24, multiple=16)
    assert out.device.type == "meta" and out.shape == (1, 3, 150, 200)


@pytest.mark.parametrize("tile", [None, 64])
def test_random_weights_match_the_host_path(tile: int | None) -> None:
    torch.manual_seed(0)
    d = Deraining(DANet(TINY), device="cpu", dtype="fp32", tile=tile, overlap=16)
    rgb = _rgb(90, 130, seed=3)
    got, expected = d.run(rgb), _host_path(d, rgb)
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("dtype", ["fp32", "auto"])
def test_shipped_weights_match_the_host_path(dtype: str) -> None:
    d = Deraining("danet", device="cpu", dtype=dtype, tile=64, overlap=16)
    rgb = _rgb(64, 100, seed=4)  # two tiles
    got = d.run(Image.fromarray(rgb))
    assert isinstance(got, Image.Image)
    diff = np.abs(np.asarray(got).astype(int) - _host_path(d, rgb).astype(int))
    assert diff.max() <= 1


def test_layers_keep_float_values_beside_an_8bit_image() -> None:
    d = Deraining(DANet(TINY), device="cpu", tile=None)
    res = d.run(_rgb(24, 32), return_layers=True)
    assert res.image.dtype == np.uint8 and res.rain.dtype == np.uint8
    assert np.array_equal(res.image, d.run(_rgb(24, 32)))


# --- the opt-in compiled forward -------------------------------------------------------------


def test_compile_is_opt_in_and_used_from_a_shapes_second_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, ...]] = []

    def fake_compile(net: torch.nn.Module, mode: str, dynamic: bool) -> object:
        assert (mode, dynamic) == ("reduce-overhead", False)
        return lambda x: calls.append(tuple(x.shape)) or net(x)

    monkeypatch.setattr(torch, "compile", fake_compile)
    torch.manual_seed(0)
    d = Deraining(DANet(TINY), device="cpu", dtype="fp32", tile=None)
    rgb = _rgb(32, 48)
    eager = d.run(rgb)
    assert d.engine.fast is None  # nothing compiled unless asked
    assert d.compile("graphs") is d
    assert np.array_equal(d.run(rgb), eager) and calls == []  # first time: eager
    assert np.array_equal(d.run(rgb), eager) and calls == [(1, 3, 32, 48)]


def test_a_failing_compile_warns_once_and_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(x: torch.Tensor) -> None:
        raise RuntimeError("no backend here\nlong trace")

    monkeypatch.setattr(torch, "compile", lambda net, mode, dynamic: broken)
    torch.manual_seed(0)
    d = Deraining(DANet(TINY), device="cpu", dtype="fp32", tile=None)
    rgb = _rgb(32, 48)
    eager = d.run(rgb)
    d.compile()
    d.run(rgb)
    with pytest.warns(DerainWarning, match="running eagerly: RuntimeError: no backend here$"):
        assert np.array_equal(d.run(rgb), eager)
    assert d.engine.fast is not None
    assert d.engine.fast.failed == "RuntimeError: no backend here"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(d.run(rgb), eager)  # no second warning


def test_an_unknown_fast_path_is_refused() -> None:
    with pytest.raises(DerainError, match="unknown fast path 'jit'"):
        Deraining(DANet(TINY), device="cpu").compile("jit")  # type: ignore[arg-type]
