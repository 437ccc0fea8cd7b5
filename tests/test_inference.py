"""The Deraining front class: any input kind in, the same kind out; devices; tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from derain import DANet, DANetConfig, DerainError, Deraining, DerainResult, ImageError
from derain.engines.devices import resolve_device

TINY = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)


@pytest.fixture(scope="module")
def derain() -> Deraining:
    torch.manual_seed(0)
    return Deraining(DANet(TINY), device="cpu", tile=None)


def _rgb(h: int = 37, w: int = 53, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "I", "F", "1"])
def test_pil_mode_and_size_are_kept(derain: Deraining, mode: str) -> None:
    im = Image.fromarray(_rgb()).convert(mode)
    out = derain.run(im)
    assert isinstance(out, Image.Image)
    assert (out.mode, out.size) == (mode, im.size)


def test_alpha_is_untouched(derain: Deraining) -> None:
    rgba = np.dstack([_rgb(), np.random.default_rng(1).integers(0, 256, (37, 53), dtype=np.uint8)])
    out = derain.run(rgba)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])


@pytest.mark.parametrize(
    ("dtype", "scale"), [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1), (np.float64, 1)]
)
@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 1), (20, 30, 3), (20, 30, 4)])
def test_numpy_dtype_and_shape_are_kept(derain: Deraining, dtype, scale, shape) -> None:
    arr = (np.random.default_rng(2).random(shape) * scale).astype(dtype)
    out = derain.run(arr)
    assert out.shape == arr.shape and out.dtype == arr.dtype
    if np.issubdtype(dtype, np.floating):
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_non_contiguous_array(derain: Deraining) -> None:
    arr = _rgb(40, 60)[::2, ::-1]
    assert derain.run(arr).shape == arr.shape


def test_tensor_in_tensor_out(derain: Deraining) -> None:
    x = torch.rand(3, 24, 40, dtype=torch.float64)
    out = derain.run(x)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == x.dtype
    batch = torch.rand(2, 3, 24, 40)
    assert derain.run(batch).shape == batch.shape


def test_list_in_list_out(derain: Deraining) -> None:
    outs = derain.run([_rgb(), Image.fromarray(_rgb(20, 20))])
    assert isinstance(outs, list) and outs[0].shape == (37, 53, 3) and outs[1].size == (20, 20)


def test_path_in_pil_out_with_exif_orientation(derain: Deraining, tmp_path) -> None:
    im = Image.fromarray(_rgb(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    im.save(tmp_path / "r.jpg", exif=exif)
    out = derain.run(tmp_path / "r.jpg")
    assert isinstance(out, Image.Image) and out.size == (20, 40)  # upright: width and height swap


def test_return_layers(derain: Deraining) -> None:
    res = derain.run(_rgb(), return_layers=True)
    assert isinstance(res, DerainResult)
    assert res.image.shape == (37, 53, 3)
    assert res.rain.shape == res.mask.shape == (37, 53)


@pytest.mark.parametrize(
    "bad", [torch.full((3, 8, 8), float("nan")), torch.rand(5, 8, 8), torch.rand(8)]
)
def test_bad_tensors_are_refused(derain: Deraining, bad: torch.Tensor) -> None:
    with pytest.raises(ImageError):
        derain.run(bad)


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(DerainError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(DerainError, match="unknown device"):
        resolve_device("tpu-ish")


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), tile=st.sampled_from([None, 64]))
def test_output_size_equals_input_size(h: int, w: int, tile: int | None) -> None:
    net = Deraining(DANet(TINY), device="cpu", tile=tile, overlap=16)
    out = net.run(np.random.default_rng(h * 100 + w).random((h, w, 3)).astype(np.float32))
    assert out.shape == (h, w, 3) and np.isfinite(out).all()


def test_the_callers_model_is_not_changed() -> None:
    net = DANet(TINY).train()
    before = {k: (v.clone(), v.stride()) for k, v in net.state_dict().items()}
    d = Deraining(net, device="cpu", tile=None)
    d.run(_rgb(16, 16))
    assert net.training and all(p.requires_grad for p in net.parameters())
    after = net.state_dict()
    assert all(torch.equal(after[k], v) and after[k].stride() == s for k, (v, s) in before.items())
    assert not d.model.training  # the copy runs in eval mode


def test_layers_have_the_inputs_kind() -> None:
    d = Deraining(DANet(TINY), device="cpu", tile=None)
    res = d.run(_rgb(16, 24), return_layers=True)
    assert isinstance(res.rain, np.ndarray) and res.rain.shape == (16, 24)
    res = d.run(Image.fromarray(_rgb(16, 24)), return_layers=True)
    assert isinstance(res.mask, Image.Image) and res.mask.size == (24, 16)
