"""Reading inputs: floats outside [0, 1], animated images (tests/io/test_animation.py has
the rest of them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import cli, make_image
from PIL import Image

from derain import Deraining, ImageError

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


# --- 2: floats outside [0, 1] -------------------------------------------------------------


def test_float_array_in_0_255_is_refused_with_the_fix(net: Deraining) -> None:
    arr = np.random.default_rng(0).uniform(0, 255, (16, 16, 3))
    with pytest.raises(ImageError) as info:
        net.run(arr)
    message = str(info.value)
    assert "\n" not in message
    assert "[0, 1]" in message and "255" in message and "divide by 255" in message


def test_float_tensor_below_zero_is_refused(net: Deraining) -> None:
    with pytest.raises(ImageError, match=r"image: .*-0\.5"):
        net.run(torch.full((3, 16, 16), -0.5))


def test_float_rounding_just_outside_unit_range_is_accepted(net: Deraining) -> None:
    arr = np.full((16, 16, 3), 0.5)
    arr[0, 0] = 1.0 + 1e-6
    arr[0, 1] = -1e-6
    out = net.run(arr)
    assert out.dtype == arr.dtype and out.min() >= 0 and out.max() <= 1


# --- 18: animated images ----------------------------------------------------------------------


def _animated(path: str, fmt: str) -> Path:
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)) for _ in range(3)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=50)
    return Path(path)


@pytest.mark.parametrize(("name", "fmt"), [("a.gif", "GIF"), ("a.png", "PNG")])
def test_api_warns_that_only_the_first_frame_is_derained(
    net: Deraining, name: str, fmt: str
) -> None:
    from derain.errors import DerainWarning

    path = _animated(name, fmt)
    with pytest.warns(DerainWarning, match=rf"{name}: animated image with 3 frames"):
        net.run(path)


def test_cli_derains_every_frame_without_a_warning(model_dir: Path) -> None:
    _animated("in/a.gif", "GIF")
    _animated("in/b.png", "PNG")
    make_image("in/c.png")
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr
    for name in ("a.gif", "b.png"):
        with Image.open(Path("out") / name) as out:
            assert out.n_frames == 3, name
