"""Hostile images through the Python API and the command line.

Every case either gives a correct result (same size, same mode) or one line that names the
file and the problem. Already covered elsewhere, so not repeated here: PIL modes and numpy
dtypes kept (test_inference), sizes under tiling (test_inference, test_tiling), ``--max-pixels``
lifting the limit (test_cli).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from places import ROOT
from typer.testing import CliRunner

from derain import Deraining, DerainWarning, ImageError
from derain.cli import app, with_default_verb
from derain.io.imaging import open_image
from derain.tiling import run_tiled

RNG = np.random.default_rng(0)


pytestmark = pytest.mark.usefixtures("no_denormals")


@pytest.fixture(scope="module")
def net(model_dir: Path) -> Deraining:
    return Deraining(model_dir, device="cpu", tile=None)  # tiling: see the property test


def cli(*args: str):
    return CliRunner().invoke(app, with_default_verb([str(a) for a in args]))


def _rgb(h: int = 24, w: int = 30) -> Image.Image:
    return Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def _png(w: int, h: int, depth: int, colour: int, raw: bytes) -> bytes:
    """A PNG written by hand: Pillow cannot write 16-bit RGB, nor lie about the size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _animated_gif() -> bytes:
    frames = [_rgb(10, 12) for _ in range(3)]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _broken_exif_jpeg() -> bytes:
    # A TIFF header whose IFD claims an entry the block is too short to hold.
    return _encoded(_rgb(), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12")


# name -> (file bytes, expected words in the one-line error)
BAD: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty.png": (lambda: b"", "file is empty"),
    "truncated.png": (lambda: _encoded(_rgb(), "PNG")[:300], "truncated"),
    "truncated.jpg": (lambda: _encoded(_rgb(), "JPEG")[:400], "truncated"),
    "text.jpg": (lambda: b"just some text\n", "not an image file"),
    # A truncated animated GIF made Pillow raise IndexError (found by the fuzzer).
    "truncated.gif": (lambda: _animated_gif()[:549], "cannot read image"),
    # The header claims 20000×20000: the guard refuses before a byte of pixels is allocated.
    "bomb.png": (lambda: _png(20000, 20000, 8, 2, b""), "decompression-bomb guard"),
}

# name -> (file bytes, mode of the output); each must be derained at its own size
GOOD: dict[str, tuple[Callable[[], bytes], str]] = {
    "1x1.png": (lambda: _encoded(_rgb(1, 1), "PNG"), "RGB"),
    "15x15.png": (lambda: _encoded(_rgb(15, 15), "PNG"), "RGB"),
    "1x4000.png": (lambda: _encoded(_rgb(1, 4000), "PNG"), "RGB"),
    "cmyk.jpg": (lambda: _encoded(_rgb().convert("CMYK"), "JPEG"), "CMYK"),
    "palette.png": (lambda: _encoded(_rgb().convert("P"), "PNG"), "P"),
    "la.png": (lambda: _encoded(_rgb().convert("LA"), "PNG"), "LA"),
    "gray16.png": (lambda: _encoded(_rgb().convert("I;16"), "PNG"), "I;16"),
    "int32.tif": (lambda: _encoded(_rgb().convert("I"), "TIFF"), "I"),
    "float.tif": (lambda: _encoded(_rgb().convert("F"), "TIFF"), "F"),
    # Pillow reads 16-bit RGB PNGs as 8-bit RGB; the output is 8-bit RGB (documented).
    "rgb16.png": (lambda: _png(6, 5, 16, 2, b"".join(b"\0" + bytes(36) for _ in range(5))), "RGB"),
    "animated.gif": (_animated_gif, "P"),  # every frame; the first's mode (documented)
    "broken-exif.jpg": (_broken_exif_jpeg, "RGB"),
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    for name, (make, _) in {**BAD, **GOOD}.items():
        (root / name).write_bytes(make())
    (root / "folder.png").mkdir()
    return root


def _one_line(exc: BaseException, *needles: str) -> str:
    text = str(exc)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_is_one_line_image_error(zoo: Path, net: Deraining, name: str) -> None:
    path = zoo / name
    with pytest.raises(ImageError) as info:
        open_image(path)
    _one_line(info.value, str(path), BAD[name][1])
    with pytest.raises(ImageError) as info:
        net.run(path)
    _one_line(info.value, str(path), BAD[name][1])


@pytest.mark.parametrize("name", sorted(BAD))
def test_bytes_and_streams_get_the_same_errors_as_files(zoo: Path, name: str) -> None:
    # One reader: stdin, uploads and video frames see what a file on disk would.
    data = (zoo / name).read_bytes()
    for source in (data, io.BytesIO(data)):
        with pytest.raises(ImageError) as info:
            open_image(source, "<stdin>")
        # Pillow words a truncated stream "Truncated File Read", a truncated file otherwise.
        text = _one_line(info.value, "<stdin>: ")
        assert BAD[name][1].lower() in text.lower(), text


@pytest.mark.filterwarnings("ignore::derain.errors.DerainWarning")  # animated.gif: tested apart
@pytest.mark.parametrize("name", sorted(GOOD))
def test_bytes_and_streams_read_as_the_file_does(zoo: Path, name: str) -> None:
    path = zoo / name
    expected = open_image(path)
    for source in (path.read_bytes(), io.BytesIO(path.read_bytes())):
        got = open_image(source)
        assert (got.mode, got.size) == (expected.mode, expected.size)
        assert np.array_equal(np.asarray(got), np.asarray(expected))


def test_directory_named_like_an_image(zoo: Path, net: Deraining) -> None:
    with pytest.raises(ImageError) as info:
        net.run(zoo / "folder.png")
    _one_line(info.value, "folder.png: is a directory")


@pytest.mark.parametrize("name", sorted(GOOD))
def test_awkward_file_keeps_size_and_mode(zoo: Path, net: Deraining, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's "Corrupt EXIF data" must not reach the user
        warnings.simplefilter("ignore", DerainWarning)  # animated: ours, on purpose (test_round2)
        out = net.run(zoo / name)
    assert (out.size, out.mode) == (open_image(zoo / name).size, GOOD[name][1])
    assert np.isfinite(np.asarray(out, dtype=np.float64)).all()


def test_cli_batch_of_hostile_files(zoo: Path, model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(zoo, "-o", out, "--model", model_dir, "--tile", "none")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("derain: error: ")]
    assert len(errors) == len(BAD)
    for name, (_, words) in BAD.items():
        line = next(e for e in errors if f"{zoo / name}: " in e)
        assert words in line, line
    assert f"done {len(GOOD)}, skipped 0, failed {len(BAD)}" in result.stderr
    for name, (_, mode) in GOOD.items():
        written = open_image(out / name)  # a complete, valid image of the same size and mode
        assert (written.size, written.mode) == (open_image(zoo / name).size, mode), name
    with Image.open(out / "animated.gif") as gif:
        assert getattr(gif, "n_frames", 1) == 3  # every frame (tests/io/test_animation.py)
    assert sorted(p.name for p in out.iterdir()) == sorted(GOOD)  # nothing partial, no temp


def test_bomb_then_max_pixels_reports_the_real_problem(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 3000×3000 header with no pixel data, under a lowered limit (never a real 100 MP).
    path = tmp_path / "claims-9mp.png"
    path.write_bytes(_png(3000, 3000, 8, 0, b""))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    # 9 MP against 1 MP: over twice the limit (Pillow's error); against 5 MP: between one and
    # two times the limit (Pillow only warns, derain refuses all the same).
    for args in ((), ("--max-pixels", "5000000")):
        result = cli(path, "--model", model_dir, *args)
        assert result.exit_code == 1
        line = result.stderr.strip()
        assert line.startswith(f"derain: error: {path}: image is too large") and "\n" not in line
        assert "--max-pixels" in line
    result = cli(path, "--model", model_dir, "--max-pixels", "10000000")
    assert result.exit_code == 1  # let through: now the missing pixel data is the problem
    assert f"{path}: cannot read image" in result.stderr.strip()
    assert Image.MAX_IMAGE_PIXELS == 1_000_000


# --- arrays and tensors ----------------------------------------------------------------------

REFUSED = {
    "inf tensor": torch.full((3, 8, 8), float("inf")),
    "nan in a batch": torch.stack([torch.rand(3, 8, 8), torch.full((3, 8, 8), float("nan"))]),
    "nan array": np.full((8, 8, 3), np.nan),
    "-inf float16 array": np.full((8, 8), -np.inf, dtype=np.float16),
    "2-D tensor": torch.rand(8, 8),
    "5-D tensor": torch.rand(1, 1, 3, 8, 8),
    "channels-last tensor": torch.rand(8, 8, 3),
    "uint8 tensor": torch.zeros(3, 8, 8, dtype=torch.uint8),
    "4-D array": np.zeros((1, 8, 8, 3), np.uint8),
    "5 channels array": np.zeros((8, 8, 5), np.uint8),
    "int32 array": np.zeros((8, 8, 3), np.int32),
    "bool array": np.zeros((8, 8), bool),
    "empty array": np.zeros((0, 8, 3), np.uint8),
    "empty tensor": torch.rand(3, 8, 0),
    "nan F image": Image.fromarray(np.full((8, 8), np.nan, np.float32), "F"),
    "a string of a folder": ".",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_array_or_tensor_is_refused_in_one_line(net: Deraining, case: str) -> None:
    with pytest.raises(ImageError) as info:
        net.run(REFUSED[case])
    text = _one_line(info.value)
    assert text.split(":")[0] in ("image", "image[1]", ".")


def test_signalling_nan_is_refused_without_a_warning(net: Deraining) -> None:
    # Found by the fuzzer: casting a signalling NaN to float64 warned before the check ran.
    snan = np.full((8, 8), 0x7FA00000, np.uint32).view(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="NaN"):
            net.run(Image.fromarray(snan, "F"))


@pytest.mark.parametrize(
    "image",
    [
        torch.rand(3, 20, 40)[:, :, ::2],  # strided view
        torch.rand(1, 3, 20, 20).to(memory_format=torch.channels_last),
        torch.rand(20, 3, 20).permute(1, 0, 2),  # non-contiguous C×H×W
        np.asfortranarray(RNG.random((20, 24, 3))),
        (RNG.random((20, 24, 3)) * 65535).astype(np.uint16)[::-1, ::2],
        RNG.random((20, 24)).astype(np.float16),
    ],
    ids=["strided", "channels-last", "permuted", "fortran", "uint16-negative-stride", "float16"],
)
def test_non_contiguous_and_odd_dtypes_come_back_alike(net: Deraining, image: object) -> None:
    out = net.run(image)
    assert type(out) is type(image)
    assert out.shape == image.shape and out.dtype == image.dtype  # type: ignore[attr-defined]
    as_float = out.float() if isinstance(out, torch.Tensor) else out.astype(np.float64)
    assert bool((as_float == as_float).all())  # no NaN


# --- properties ------------------------------------------------------------------------------

PIL_MODES = ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "I", "F", "1"]


@st.composite
def images(draw: st.DrawFn) -> object:
    h, w = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    kind = draw(st.sampled_from(["pil", "numpy", "torch"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "pil":
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(
            draw(st.sampled_from(PIL_MODES))
        )
    channels = draw(st.sampled_from([None, 1, 2, 3, 4]))
    shape = (h, w) if channels is None else (h, w, channels)
    if kind == "numpy":
        dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float16, np.float32, np.float64]))
        info = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1
        return (rng.random(shape) * info).astype(dtype)
    dtype = draw(st.sampled_from([torch.float16, torch.float32, torch.float64]))
    return torch.from_numpy(rng.random((channels or 1, h, w))).to(dtype)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(image=images(), tile=st.sampled_from([None, 64, 80]), overlap=st.integers(0, 48))
def test_any_input_keeps_size_mode_dtype_and_is_finite(
    model_dir: Path, image: object, tile: int | None, overlap: int
) -> None:
    out = Deraining(model_dir, device="cpu", tile=tile, overlap=overlap).run(image)
    assert type(out) is type(image)
    if isinstance(image, Image.Image):
        assert (out.size, out.mode) == (image.size, image.mode)
        values = np.asarray(out, dtype=np.float64)
    else:
        assert out.shape == image.shape and out.dtype == image.dtype  # type: ignore[attr-defined]
        values = np.asarray(out.float() if isinstance(out, torch.Tensor) else out, np.float64)
    assert np.isfinite(values).all()


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 150),
    w=st.integers(1, 150),
    tile=st.integers(16, 96),
    overlap=st.integers(0, 96),
    multiple=st.sampled_from([1, 8, 16]),
)
def test_tiles_blend_back_to_the_input(h: int, w: int, tile: int, overlap: int, multiple: int):
    # With an identity network, any tile/overlap/multiple must give the input back exactly.
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * 1000 + w))
    y = run_tiled(lambda t: t, x, tile, overlap, multiple)
    assert y.shape == x.shape and torch.allclose(x, y, atol=1e-5)


@pytest.mark.slow
def test_fuzz_open_image_briefly(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    harness = ROOT / "tests" / "hostile" / "fuzz_open_image.py"
    proc = subprocess.run(
        [sys.executable, str(harness), "5000", f"-artifact_prefix={tmp_path}/"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 5000 runs" in proc.stderr
    assert not list(tmp_path.glob("crash-*"))
