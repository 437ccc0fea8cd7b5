"""Writing outputs: deep grey into 8-bit formats, long names, modes a format cannot store."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from clitools import cli, make_image, png_depth_and_pixels, rgb48_png
from PIL import Image

from derain import Deraining
from derain.io import read_made_by, write_image_atomic

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


def gray16(h: int = 24, w: int = 32) -> np.ndarray:
    """A 16-bit grey ramp over the middle of the range (no value near white)."""
    ramp = np.linspace(10_000, 50_000, h * w).reshape(h, w)
    return ramp.astype(np.uint16)


# --- 1: 16-bit grey into an 8-bit format ---------------------------------------------------


@pytest.mark.parametrize("mode", ["I;16", "I"])
@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".bmp", ".ppm", ".gif"])
def test_16_bit_grey_is_scaled_into_8_bit_formats(mode: str, suffix: str) -> None:
    arr = gray16()
    image = Image.fromarray(arr).convert(mode) if mode == "I" else Image.fromarray(arr)
    assert image.mode == mode
    out = write_image_atomic(image, f"g16{suffix}")
    with Image.open(out) as back:
        got = np.asarray(back.convert("L"), dtype=np.float64)
    want = arr / 257.0
    assert np.abs(got - want).mean() < 2.0  # lossy formats: a grey level or so


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_cli_16_bit_grey_png_to_jpeg_is_not_white(model_dir: Path, suffix: str) -> None:
    Image.fromarray(gray16(48, 64)).save("g16.png")
    result = cli("g16.png", "-o", f"g16{suffix}", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    with Image.open(f"g16{suffix}") as out:
        pixels = np.asarray(out.convert("L"))
    assert (pixels == 255).mean() < 0.05  # was 100 % white
    assert 20 < pixels.mean() < 235


def test_float_image_in_unit_range_is_scaled_into_png() -> None:
    arr = np.linspace(0.1, 0.9, 24 * 32, dtype=np.float32).reshape(24, 32)
    out = write_image_atomic(Image.fromarray(arr, "F"), "f.png")
    with Image.open(out) as back:
        got = np.asarray(back, dtype=np.float64) / 65535
    assert np.abs(got - arr).max() < 1e-4


# --- 5: long output names -------------------------------------------------------------------


@pytest.mark.parametrize("length", [236, 245, 251])
def test_long_output_names_can_be_written(length: int) -> None:
    name = "r" * (length - len(".png")) + ".png"
    assert len(name.encode()) == length
    out = write_image_atomic(Image.new("RGB", (4, 4)), Path("out") / name)
    assert out.is_file() and sorted(p.name for p in Path("out").iterdir()) == [name]


def test_cli_long_non_ascii_output_name(model_dir: Path) -> None:
    make_image("a.png")
    name = "é" * 120 + ".png"  # 244 bytes in UTF-8
    result = cli("a.png", "-o", name, "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    assert Path(name).is_file()


def test_stale_temp_of_a_long_name_is_removed(tmp_path: Path) -> None:
    from derain.atomic import temp_path

    target = Path("out") / ("q" * 240 + ".png")
    target.parent.mkdir()
    stale = temp_path(target)
    assert len(stale.name.encode()) <= 255
    dead = stale.name.replace(f".{os.getpid()}.", ".999999999.")
    Path("out", dead).write_bytes(b"half")
    write_image_atomic(Image.new("RGB", (4, 4)), target)
    assert sorted(p.name for p in Path("out").iterdir()) == [target.name]


# --- 6: modes a PNG cannot store ------------------------------------------------------------


def test_cmyk_input_to_png_output(model_dir: Path) -> None:
    rgb = Image.open(make_image("src.png"))
    rgb.convert("CMYK").save("cmyk.jpg")
    result = cli("cmyk.jpg", "-o", "out.png", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    with Image.open("out.png") as out:
        assert out.mode == "RGB" and out.size == rgb.size


def test_float_tiff_input_to_png_output(model_dir: Path) -> None:
    arr = np.linspace(0.2, 0.8, 24 * 32, dtype=np.float32).reshape(24, 32)
    Image.fromarray(arr, "F").save("f.tif")
    result = cli("f.tif", "-o", "out.png", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    with Image.open("out.png") as out:
        assert out.size == (32, 24)
        got = np.asarray(out, dtype=np.float64) / 65535
    assert 0.05 < got.mean() < 0.95 and got.std() > 0


# --- 16-bit RGB PNG --------------------------------------------------------------------------


def rgb48(h: int = 24, w: int = 32) -> np.ndarray:
    """A smooth 16-bit RGB picture whose low bytes matter (8 bits would lose them)."""
    y, x = np.mgrid[0:h, 0:w]
    planes = [10_000 + 997 * x + 13 * y, 40_000 - 811 * y + 7 * x, 20_000 + 301 * (x + y)]
    return np.stack(planes, axis=-1).astype(np.uint16)


def test_cli_keeps_16_bit_rgb_png(model_dir: Path) -> None:
    pytest.importorskip("av", reason="16-bit RGB PNG goes through PyAV")
    pixels = rgb48()
    Path("rgb16.png").write_bytes(rgb48_png(pixels))
    result = cli("rgb16.png", "-o", "o.png", "--model", model_dir, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    depth, got = png_depth_and_pixels(Path("o.png").read_bytes())
    assert depth == 16 and got.shape == pixels.shape
    want = Deraining(model_dir, device="cpu").run(pixels)  # uint16 in, uint16 out
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert read_made_by("o.png") is not None  # the run record survives the 16-bit writer
