"""Hostile input, round two (issue 13): each test here failed before its fix.

A correct result, or one line that names the file and the problem; never garbage with exit
code 0, never a traceback, never a batch that stops early.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import cli, make_image, one_error_line
from PIL import Image
from typer.testing import CliRunner

from derain import Deraining, ImageError
from derain.cli import app, with_default_verb
from derain.io_files import write_image_atomic

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


@pytest.fixture(scope="module")
def net(model_dir: Path) -> Deraining:
    return Deraining(model_dir, device="cpu", tile=None)


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


# --- 3: the format the name says, or a refusal ---------------------------------------------


@pytest.mark.parametrize("name", ["x.heic", "noext", "out.xyz"])
def test_output_name_without_a_writable_format_is_refused(model_dir: Path, name: str) -> None:
    make_image("a.png")
    result = cli("a.png", "-o", name, "--model", model_dir)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert name in line and "format" in line
    assert not Path(name).exists()


def test_stdin_to_a_name_without_a_writable_format_is_refused(model_dir: Path) -> None:
    data = make_image("a.png").read_bytes()
    result = cli("-", "-o", "x.heic", "--model", model_dir, stdin=data)
    assert result.exit_code == 2
    assert "x.heic" in one_error_line(result)


@pytest.mark.parametrize(("name", "fmt"), [("x.jpg", "JPEG"), ("x.webp", "WEBP"), ("x.png", "PNG")])
def test_rain_preview_writes_the_format_the_name_says(name: str, fmt: str) -> None:
    make_image("photos/a.png", 64, 64)
    result = cli("rain-preview", "photos", "-o", name, "-n", "1", "--crop", "32")
    assert result.exit_code == 0, result.stderr
    with Image.open(name) as im:
        assert im.format == fmt


def test_rain_preview_shows_presets_side_by_side() -> None:
    make_image("photos/a.png", 64, 64)
    result = cli(
        "rain-preview",
        "photos",
        "-o",
        "g.png",
        "-n",
        "1",
        "--crop",
        "32",
        "--preset",
        "wide",
        "--preset",
        "real",
    )
    assert result.exit_code == 0, result.stderr
    with Image.open("g.png") as im:
        assert im.size == (3 * 32 + 2 * 4, 32)  # clean | wide | real
    bad = cli("rain-preview", "photos", "-o", "h.png", "--preset", "wide", "--preset", "drizzle")
    assert bad.exit_code != 0
    assert "drizzle" in one_error_line(bad)
    assert not Path("h.png").exists()


@pytest.mark.parametrize("name", ["x.heic", "noext"])
def test_rain_preview_refuses_a_name_without_a_format(name: str) -> None:
    make_image("photos/a.png", 64, 64)
    result = cli("rain-preview", "photos", "-o", name, "-n", "1", "--crop", "32")
    assert result.exit_code != 0
    assert name in one_error_line(result)
    assert not Path(name).exists()


# --- 4: a symlink loop matched by a glob ----------------------------------------------------


def test_glob_matching_a_symlink_loop_fails_that_file_only(model_dir: Path) -> None:
    make_image("in/a.png")
    Path("in/loop.png").symlink_to("loop.png")  # points at itself
    result = cli("in/*.png", "-o", "out", "--model", model_dir)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("derain: error:")]
    assert len(errors) == 1 and "loop.png" in errors[0]
    assert Path("out/a.png").is_file()
    assert "done 1, skipped 0, failed 1" in result.stderr


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


# --- 7: outputs checked before any image is derained ---------------------------------------


def test_output_below_a_file_is_refused_before_the_model_loads() -> None:
    for i in range(2):
        make_image(f"in/{i}.png", seed=i)
    Path("blocker").write_text("x")
    # A model that cannot load: reaching it would mean work began before the check.
    result = cli("in", "-o", "blocker/deep/out", "--model", "no-such-model")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("derain: error:")]
    assert len(errors) == 2, result.stderr
    assert all("Not a directory: blocker" in line for line in errors)
    assert "no-such-model" not in result.stderr and "File exists" not in result.stderr
    assert Path("blocker").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused_before_the_model_loads() -> None:
    make_image("in/0.png")
    Path("out").mkdir()
    Path("out").chmod(0o555)
    try:
        result = cli("in", "-o", "out", "--model", "no-such-model")
    finally:
        Path("out").chmod(0o755)
    assert result.exit_code == 1
    assert "Permission denied" in result.stderr and "no-such-model" not in result.stderr


# --- 9: earlier outputs beside the inputs are not inputs, with -o too ----------------------


def test_earlier_outputs_beside_inputs_are_not_derained_again(model_dir: Path) -> None:
    make_image("in/a.png")
    make_image("in/a_derained.png", seed=1)
    make_image("in/a_rain.png", seed=2)
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in Path("out").iterdir()) == ["a.png"]
    assert "done 1, skipped 0, failed 0" in result.stderr


# --- 10: outputs of another model are redone ------------------------------------------------


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import TINY

    from derain import DANet, save_pretrained

    folder = tmp_path_factory.mktemp("other-model")
    torch.manual_seed(1)
    save_pretrained(DANet(TINY), folder)
    return folder


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif", ".gif"])
def test_outputs_of_another_model_are_redone(
    model_dir: Path, other_model_dir: Path, suffix: str
) -> None:
    make_image(f"in/a{suffix}")
    first = cli("in", "-o", "out", "--model", model_dir)
    assert "done 1, skipped 0" in first.stderr, first.stderr
    made = Path(f"out/a{suffix}").read_bytes()
    again = cli("in", "-o", "out", "--model", model_dir)
    assert "done 0, skipped 1" in again.stderr, again.stderr
    other = cli("in", "-o", "out", "--model", other_model_dir)
    assert other.exit_code == 0, other.stderr
    assert "done 1, skipped 0" in other.stderr and "made by another model" in other.stderr
    assert Path(f"out/a{suffix}").read_bytes() != made
    assert "done 0, skipped 1" in cli("in", "-o", "out", "--model", other_model_dir).stderr


def test_made_by_names_the_model_and_its_weights(net: Deraining) -> None:
    from derain.io_files import read_made_by

    made_by = net.made_by
    write_image_atomic(Image.new("RGB", (4, 4)), "a.png", made_by=made_by)
    assert read_made_by("a.png") == made_by
    assert f"weights sha256:{net.weights_sha256}" in made_by and len(net.weights_sha256) == 64


# --- 14-16: what a user sees ---------------------------------------------------------------


def test_log_output_gets_one_line_per_file(model_dir: Path) -> None:
    for i in range(2):
        make_image(f"in/{i}.png", seed=i)
    make_image("out/1.png")
    result = cli("in", "-o", "out", "--model", model_dir)  # stderr is not a terminal here
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "wrote out/0.png" in lines
    assert any(line.startswith("skipped out/1.png") for line in lines)


def test_ctrl_c_reports_the_counts(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from derain.batch import BatchRunner

    for i in range(3):
        make_image(f"in/{i}.png", seed=i)
    real = BatchRunner.process
    calls = []

    def interrupted_second(self, job):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, job)

    monkeypatch.setattr(BatchRunner, "process", interrupted_second)
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 130
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("derain: error: interrupted")
    assert "done 1, skipped 0, failed 0" in last and "not done 2" in last


def test_image_bytes_are_not_written_to_a_terminal(model_dir: Path) -> None:
    import pty
    import subprocess
    import sys

    data = make_image("a.png").read_bytes()
    main_fd, child_fd = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "derain", "-", "--model", str(model_dir)],
            input=data,
            stdout=child_fd,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(child_fd)
        os.close(main_fd)
    assert proc.returncode == 2
    stderr = proc.stderr.decode()
    assert stderr.count("\n") == 1 and "terminal" in stderr and "Traceback" not in stderr


# --- 8: eval goes on past a bad pair --------------------------------------------------------


def test_eval_reports_a_bad_pair_skips_it_and_goes_on(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in (1, 2, 3, 4):
        make_image(f"data/rain/{i}.png", seed=i)
        make_image(f"data/norain/{i}.png", seed=10 + i)
    make_image("data/norain/2.png", h=16, w=16)  # size mismatch
    Path("data/rain/3.png").write_bytes(b"not an image")
    derained: list[object] = []
    real_run = Deraining.run

    def counting_run(self, image, **kwargs):
        derained.append(image)
        return real_run(self, image, **kwargs)

    monkeypatch.setattr(Deraining, "run", counting_run)
    result = cli("eval", "--data", "data", "--model", model_dir, "--csv", "s.csv")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("derain: error:")]
    assert len(errors) == 3, result.stderr
    assert "rain/2.png" in errors[0] and "size" in errors[0]
    assert "rain/3.png" in errors[1]
    assert "2 of 4 pair(s) could not be scored" in errors[2]
    assert len(derained) == 2  # the bad pairs were rejected before any derain
    assert "Traceback" not in result.stderr
    rows = Path("s.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1.png", "4.png"]
    assert "│      2 │" in result.stdout  # the table scores the two good pairs


# --- 11-13: the Python API ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [
        ((None,), {}, "model"),
        ((123,), {}, "model"),
        ((), {"overlap": 2.5}, "overlap"),
        ((), {"overlap": "32"}, "overlap"),
        ((), {"tile": 2.5}, "tile"),
        ((), {"tile": True}, "tile"),
        ((), {"device": 3}, "device"),
    ],
)
def test_wrong_argument_types_are_derain_errors(
    model_dir: Path, args: tuple, kwargs: dict, needle: str
) -> None:
    from derain import DerainError

    call_args = args or (model_dir,)
    with pytest.raises(DerainError, match=needle) as info:
        Deraining(*call_args, device=kwargs.pop("device", "cpu"), **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "tile"),
    [("512", 512), (" 256 ", 256), ("none", None), ("None", None), ("auto", "auto")],
)
def test_api_takes_tile_text_as_the_cli_does(model_dir: Path, text: str, tile: object) -> None:
    assert Deraining(model_dir, device="cpu", tile=text).tile == tile


@pytest.mark.parametrize("text", ["32", "big", "-512", ""])
def test_api_and_cli_refuse_the_same_tile_text(model_dir: Path, text: str) -> None:
    from derain import DerainError

    with pytest.raises(DerainError, match="tile") as info:
        Deraining(model_dir, device="cpu", tile=text)
    make_image("a.png")
    result = cli("a.png", "--model", model_dir, "--tile", text)
    assert result.exit_code == 2
    assert str(info.value) in one_error_line(result)  # one parser, one message


def _altered_copy(model_dir: Path, folder: str) -> Path:
    import shutil

    shutil.copytree(model_dir, folder)
    weights = Path(folder) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of the last float: still a valid safetensors file
    weights.write_bytes(bytes(data))
    return weights


def test_altered_weights_loaded_by_file_path_are_refused(model_dir: Path) -> None:
    from derain import WeightsError

    weights = _altered_copy(model_dir, "altered")
    for source in (weights.parent, weights):  # the folder, and the file inside it
        with pytest.raises(WeightsError, match="sha256"):
            Deraining(source, device="cpu")


def test_sha256_argument_checks_a_lone_weights_file(model_dir: Path) -> None:
    import json
    import shutil

    from derain import WeightsError

    recorded = json.loads((model_dir / "config.json").read_text())["sha256"]
    shutil.copy(model_dir / "model.safetensors", "good.safetensors")
    assert Deraining("good.safetensors", device="cpu", sha256=recorded).weights_sha256
    altered = _altered_copy(model_dir, "altered")
    shutil.copy(altered, "bad.safetensors")
    with pytest.raises(WeightsError, match=r"bad\.safetensors: sha256"):
        Deraining("bad.safetensors", device="cpu", sha256=recorded)
    with pytest.raises(WeightsError, match="sha256"):
        Deraining(model_dir, device="cpu", sha256="0" * 64)


def test_save_pretrained_records_the_digest_it_is_checked_against(
    net: Deraining, tmp_path: Path
) -> None:
    import json

    from derain.weights import sha256_of

    weights = net.save_pretrained("saved")
    recorded = json.loads(Path("saved/config.json").read_text())["sha256"]
    assert recorded == sha256_of(weights)
    assert Deraining(weights, device="cpu", sha256=recorded).weights_sha256 == net.weights_sha256


# --- 21: help and flags ---------------------------------------------------------------------


def help_text(*args: str, width: int = 80) -> str:
    result = CliRunner().invoke(
        app, [*args, "--help"], terminal_width=width, env={"COLUMNS": str(width)}
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_flags_show_no_type_and_usage_reads_image_dots() -> None:
    text = help_text("run")
    assert "<bool>" not in text
    assert "Usage: derain run [OPTIONS] IMAGE...\n" in text and "{" not in text
    assert "-r, --recursive " in text


def test_run_help_paragraphs_are_rewrapped_not_broken() -> None:
    text = help_text("run", width=60).split("Arguments")[0]
    paragraphs: list[list[str]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            paragraphs[-1].append(stripped)
        elif paragraphs[-1]:
            paragraphs.append([])
    description = [p for p in paragraphs if p and not p[0].startswith("Usage:")]
    assert len(description) >= 2
    for lines in description:
        # A hard line break in the help source shows as a short line mid-paragraph.
        assert all(len(line) > 40 for line in lines[:-1]), lines


def test_eval_help_names_its_option_not_dir() -> None:
    text = help_text("eval")
    assert "DIR" not in text and "--data" in text


def test_rain_preview_count_has_a_long_name() -> None:
    assert "-n, --pairs" in help_text("rain-preview")


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flag(flag: str) -> None:
    from derain import __version__

    result = CliRunner().invoke(app, with_default_verb([flag]))
    assert result.exit_code == 0 and result.stdout.strip() == f"derain {__version__}"


def test_shell_completion_completes_verbs_and_options() -> None:
    import subprocess
    import sys

    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_DERAIN_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        script = "from derain.cli import main; main()"
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        return proc.stdout.split()

    assert "eval" in complete("derain ev")
    assert "--overwrite" in complete("derain run --over")
    assert "--install-completion" in help_text()


# --- 20: rain-preview size bound -------------------------------------------------------------


@pytest.mark.parametrize(("crop", "pairs"), [("10000", "1"), ("2048", "8"), ("1024", "200")])
def test_rain_preview_refuses_a_huge_grid_before_any_work(crop: str, pairs: str) -> None:
    import warnings

    make_image("photos/a.png", 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning
        result = cli("rain-preview", "photos", "-o", "x.png", "--crop", crop, "-n", pairs)
    assert result.exit_code != 0
    line = one_error_line(result)
    assert "MP" in line and "limit" in line
    assert not Path("x.png").exists()


# --- 19: --save-rain layers a person can read --------------------------------------------------


def test_save_rain_layers_show_the_rain_with_a_fixed_scale() -> None:
    from derain.imaging import open_image

    example = Path(__file__).resolve().parents[1] / "examples" / "rocket_rain.png"
    open_image(example).crop((0, 0, 256, 256)).save("rainy.png")
    # The same picture without its streaks: a heavy blur. Auto-contrast would stretch its
    # (tiny) rain layer to full range too; a fixed scale keeps it dark.
    from PIL import ImageFilter

    Image.open("rainy.png").filter(ImageFilter.GaussianBlur(6)).save("smooth.png")
    result = cli("rainy.png", "smooth.png", "-o", "out", "--save-rain", "--model", "danet")
    assert result.exit_code == 0, result.stderr
    rain = np.asarray(Image.open("out/rainy_rain.png"), dtype=np.float64)
    mask = np.asarray(Image.open("out/rainy_mask.png"), dtype=np.float64)
    smooth = np.asarray(Image.open("out/smooth_rain.png"), dtype=np.float64)
    assert rain.max() >= 200 and np.percentile(rain, 99) >= 60  # was max 40, p99 ~15
    assert mask.std() > 8  # was flat grey (std ~1)
    assert np.percentile(smooth, 99) < np.percentile(rain, 99) / 2


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


def test_cli_warns_once_per_animated_file(model_dir: Path) -> None:
    _animated("in/a.gif", "GIF")
    _animated("in/b.png", "PNG")
    make_image("in/c.png")
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    warnings_ = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings_) == 2, result.stderr
    assert warnings_[0].startswith("derain: warning: in/a.gif: animated image with 3 frames")
    assert warnings_[1].startswith("derain: warning: in/b.png: animated image with 3 frames")
    assert "first" in warnings_[0]


def test_eval_csv_that_cannot_be_written_is_found_before_the_model_loads() -> None:
    make_image("data/rain/1.png")
    make_image("data/norain/1.png")
    Path("blocker").write_text("x")
    result = cli("eval", "--data", "data", "--model", "no-such-model", "--csv", "blocker/s.csv")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "blocker/s.csv" in line and "Not a directory" in line


def test_messages_print_names_as_typed_not_as_emoji() -> None:
    make_image("a.png")
    result = cli("a.png", "--model", "hf-hub:x")
    assert result.exit_code == 1
    assert "hf-hub:x: expected" in one_error_line(result)
