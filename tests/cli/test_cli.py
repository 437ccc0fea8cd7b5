"""Tests for the ``derain`` command line (random-weight tiny model, tiny images)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import clitools
import numpy as np
import pytest
from clitools import cli, one_error_line
from PIL import Image, ImageCms

from derain import get_model_info, list_models
from derain.cli import with_default_verb
from derain.models.registry import VALIDATION_SETS
from derain.scoring.evaluate import evaluate

pytestmark = pytest.mark.usefixtures("in_tmp")


def make_image(path: str | Path, h: int = 32, w: int = 48, seed: int = 0, **save: object) -> Path:
    return clitools.make_image(path, h, w, seed, **save)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


# --- default verb ----------------------------------------------------------------------------


def test_with_default_verb() -> None:
    assert with_default_verb(["a.jpg", "-o", "b.jpg"]) == ["run", "a.jpg", "-o", "b.jpg"]
    assert with_default_verb(["-o", "b.jpg", "a.jpg"])[0] == "run"
    assert with_default_verb(["-", "-o", "-"])[0] == "run"
    for argv in ([], ["--help"], ["-h"], ["--version"], ["models"], ["eval", "--data", "d"]):
        assert with_default_verb(argv) == argv
    assert with_default_verb(["train", "--help"])[0] == "train"


def test_help_lists_commands_and_bare_path() -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for verb in ("run", "eval", "models", "train"):
        assert verb in result.stdout
    assert "derain IMAGE" in result.stdout


# --- single files ----------------------------------------------------------------------------


def test_no_verb_single_file_default_name(tmp_path: Path, model_dir: Path) -> None:
    src = make_image("a.jpg")
    before = src.read_bytes()
    result = cli("a.jpg", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    with Image.open("a_derained.jpg") as out:
        assert out.format == "JPEG" and out.size == (48, 32)
    assert src.read_bytes() == before
    assert "a_derained.jpg" in result.stderr
    assert temp_files(tmp_path) == []


def test_explicit_output_file_and_folder(model_dir: Path) -> None:
    make_image("a.jpg")
    assert cli("a.jpg", "-o", "b.png", "--model", model_dir).exit_code == 0
    with Image.open("b.png") as out:
        assert out.format == "PNG"
    assert cli("a.jpg", "-o", "outdir/", "--model", model_dir).exit_code == 0
    assert Path("outdir/a.jpg").is_file()


def test_output_made_from_another_input_is_redone(model_dir: Path) -> None:
    """`derain gray.png -o p1.png` where p1.png came from another input: not "skipped"."""
    make_image("photo.png", seed=1)
    make_image("gray.png", seed=2)
    assert cli("photo.png", "-o", "p1.png", "--model", model_dir).exit_code == 0
    again = cli("photo.png", "-o", "p1.png", "--model", model_dir)
    assert again.exit_code == 0 and "skipped" in again.stderr  # same input, same weights
    first = Path("p1.png").read_bytes()
    result = cli("gray.png", "-o", "p1.png", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    assert "skipped" not in result.stderr and "made from another input" in result.stderr
    assert Path("p1.png").read_bytes() != first


def test_input_never_overwritten(model_dir: Path) -> None:
    src = make_image("a.png")
    before = src.read_bytes()
    result = cli("a.png", "-o", "a.png", "--model", model_dir)
    assert result.exit_code == 2
    assert "overwrite the input" in one_error_line(result)
    make_image("d/b.png")
    result = cli("d", "-o", "d", "--model", model_dir, "--overwrite")
    assert result.exit_code == 2
    assert src.read_bytes() == before


def test_metadata_kept_orientation_reset(model_dir: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: open_image turns the pixels upright
    exif[0x010F] = "RainCam"
    make_image("a.jpg", icc_profile=icc, exif=exif.tobytes())
    assert cli("a.jpg", "--model", model_dir, "--quality", "90").exit_code == 0
    with Image.open("a_derained.jpg") as out:
        assert out.size == (32, 48)
        assert out.info["icc_profile"] == icc
        assert out.getexif()[0x0112] == 1 and out.getexif()[0x010F] == "RainCam"


def test_save_rain_layers(model_dir: Path) -> None:
    make_image("a.jpg")
    result = cli("a.jpg", "-o", "out/a.jpg", "--save-rain", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    for name in ("out/a.jpg", "out/a_rain.png", "out/a_mask.png"):
        with Image.open(name) as im:
            assert im.size == (48, 32)
    with Image.open("out/a_rain.png") as im:
        assert im.mode == "L"


def test_save_rain_layers_are_named_after_the_output(model_dir: Path) -> None:
    make_image("a.png")
    result = cli("a.png", "-o", "clean.png", "--save-rain", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    for name in ("clean.png", "clean_rain.png", "clean_mask.png"):
        assert Path(name).is_file() and f"wrote {name}" in result.stderr
    assert not Path("a_rain.png").exists()


def test_several_inputs_with_a_file_like_output_are_refused(model_dir: Path) -> None:
    make_image("a.png")
    make_image("b.jpg")
    result = cli("a.png", "b.jpg", "-o", "single.png", "--model", model_dir)
    assert result.exit_code == 2
    assert "single.png: names a file" in one_error_line(result) and "-o single/" in result.stderr
    assert not Path("single.png").exists()
    assert cli("a.png", "b.jpg", "-o", "outs", "--model", model_dir).exit_code == 0  # a folder


def test_missing_onnx_file_is_named_once() -> None:
    make_image("a.png")
    line = one_error_line(cli("a.png", "-m", "./nope.onnx"))
    assert line.count("nope.onnx") == 1 and "ONNX file not found" in line


def test_large_image_is_tiled(model_dir: Path) -> None:
    make_image("big.png", h=80, w=150)
    result = cli("big.png", "--tile", "64", "--overlap", "8", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    with Image.open("big_derained.png") as out:
        assert out.size == (150, 80)


def test_max_pixels(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_image("a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    result = cli("a.png", "--model", model_dir)
    assert result.exit_code == 1 and "--max-pixels" in one_error_line(result)
    assert cli("a.png", "--model", model_dir, "--max-pixels", "5000").exit_code == 0
    assert Image.MAX_IMAGE_PIXELS == 500  # restored after the command


# --- folders and globs -----------------------------------------------------------------------


def _tree() -> None:
    make_image("in/a.png", seed=1)
    make_image("in/sub/b.jpg", seed=2)
    make_image("in/sub/deep/c.png", seed=3)


def test_folder_flat_and_recursive_mirror(tmp_path: Path, model_dir: Path) -> None:
    _tree()
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.relative_to("out").as_posix() for p in Path("out").rglob("*.*")) == ["a.png"]
    result = cli("in", "-r", "-o", "out", "--model", model_dir)
    assert result.exit_code == 0
    found = sorted(p.relative_to("out").as_posix() for p in Path("out").rglob("*.*"))
    assert found == ["a.png", "sub/b.jpg", "sub/deep/c.png"]
    assert "done 2, skipped 1, failed 0" in result.stderr
    assert temp_files(tmp_path) == []


def test_folder_without_output_writes_beside_and_reruns_cleanly(model_dir: Path) -> None:
    _tree()
    assert cli("in", "-r", "--model", model_dir, "--save-rain").exit_code == 0
    assert Path("in/sub/deep/c_derained.png").is_file() and Path("in/a_rain.png").is_file()
    result = cli("in", "-r", "--model", model_dir, "--save-rain")  # own outputs are not inputs
    assert "done 0, skipped 3, failed 0" in result.stderr


def test_skip_existing_and_overwrite(model_dir: Path) -> None:
    _tree()
    assert cli("in", "-r", "-o", "out", "--model", model_dir).exit_code == 0
    Path("out/a.png").write_bytes(b"stale")
    result = cli("in", "-r", "-o", "out", "--model", model_dir)
    assert "done 0, skipped 3, failed 0" in result.stderr
    assert Path("out/a.png").read_bytes() == b"stale"
    result = cli("in", "-r", "-o", "out", "--overwrite", "-q", "--model", model_dir)
    assert result.exit_code == 0 and result.stderr == ""
    with Image.open("out/a.png") as im:
        assert im.size == (48, 32)


def test_corrupt_file_in_folder(model_dir: Path) -> None:
    _tree()
    Path("in/sub/bad.jpg").write_bytes(b"not an image at all")
    result = cli("in", "-r", "-o", "out", "--model", model_dir)
    assert result.exit_code == 1
    assert "in/sub/bad.jpg: not an image" in result.stderr
    assert "done 3, skipped 0, failed 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert Path("out/sub/deep/c.png").is_file() and not Path("out/sub/bad.jpg").exists()


def test_glob_and_several_paths(model_dir: Path) -> None:
    _tree()
    make_image("loose.jpg")
    result = cli("in/**/*.png", "loose.jpg", "-o", "out", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    found = sorted(p.relative_to("out").as_posix() for p in Path("out").rglob("*.*"))
    assert found == ["a.png", "loose.jpg", "sub/deep/c.png"]
    result = cli("in/*.gif", "-o", "out", "--model", model_dir)
    assert result.exit_code == 1 and "matches no image files" in result.stderr


# --- pipes -----------------------------------------------------------------------------------


def test_stdin_stdout(model_dir: Path) -> None:
    data = make_image("a.jpg").read_bytes()
    result = cli("-", "-o", "-", "--model", model_dir, stdin=data)
    assert result.exit_code == 0, result.stderr
    with Image.open(io.BytesIO(result.stdout_bytes)) as out:
        assert out.format == "JPEG" and out.size == (48, 32)
    result = cli("-", "-o", "-", "--model", model_dir, stdin=b"garbage")
    assert result.exit_code == 1 and result.stdout_bytes == b""
    assert one_error_line(result).startswith("derain: error: <stdin>:")


def _script() -> str:
    found = shutil.which("derain") or str(Path(sys.executable).with_name("derain"))
    if not Path(found).is_file():
        pytest.skip("the derain console script is not installed")
    return found


def test_installed_script_in_a_pipe(model_dir: Path) -> None:
    data = make_image("a.png").read_bytes()
    proc = subprocess.run(
        [_script(), "-", "-o", "-", "--model", model_dir],
        input=data,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    with Image.open(io.BytesIO(proc.stdout)) as out:
        assert out.format == "PNG" and out.size == (48, 32)


def test_installed_script_error_is_one_line() -> None:
    proc = subprocess.run(
        [_script(), "missing.jpg"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "derain: error: missing.jpg: no such file or folder"


# --- models and eval -------------------------------------------------------------------------


def test_models_table() -> None:
    result = cli("models")
    assert result.exit_code == 0, result.stderr
    for text in ("danet-plus", "1,547,066", "2,943,138", "48.8", "130.5"):
        assert text in result.stdout
    for name in list_models():  # each model's weights status and its recorded scores
        weights = get_model_info(name).weights
        assert ("shipped; sha256 ✓" if weights.sha256 else "not shipped") in result.stdout
        for validation_set in VALIDATION_SETS:
            score = weights.score(validation_set)
            if score is not None:
                assert f"{score.psnr:.2f} / {score.ssim:.4f}" in result.stdout


def _paired(root: Path) -> None:
    (root / "norain").mkdir(parents=True)
    for i in range(1, 4):
        rainy = make_image(root / "rain" / f"{i}.png", seed=i)
        clean = np.asarray(Image.open(rainy)) // 2 + 60
        Image.fromarray(clean.astype(np.uint8)).save(root / "norain" / f"{i}.png")
    make_image(root / "rain" / "orphan.png")


def test_eval_identity_and_csv() -> None:
    _paired(Path("data"))
    result = cli("eval", "--data", "data", "--identity", "--csv", "scores.csv")
    assert result.exit_code == 0, result.stderr
    assert "rain/orphan.png" in result.stderr
    pairs = [(f"data/rain/{i}.png", f"data/norain/{i}.png") for i in range(1, 4)]
    scores = evaluate(None, pairs).scores
    assert f"{np.mean([s.psnr for s in scores]):.2f}" in result.stdout
    assert f"{np.mean([s.ssim for s in scores]):.4f}" in result.stdout
    with open("scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["1.png", "2.png", "3.png"]
    assert float(rows[0]["psnr"]) == pytest.approx(scores[0].psnr, abs=1e-3)


def test_eval_with_model(model_dir: Path) -> None:
    _paired(Path("data"))
    result = cli("eval", "--data", "data", "--model", model_dir, "-q")
    assert result.exit_code == 0, result.stderr
    assert "PSNR" in result.stdout and result.stderr == ""


def test_eval_unrecognised_folder() -> None:
    make_image("photos/a.png")
    result = cli("eval", "--data", "photos", "--identity")
    assert result.exit_code == 1
    assert "photos: not a paired folder" in one_error_line(result)


# --- errors ----------------------------------------------------------------------------------


def test_one_line_errors(tmp_path: Path, model_dir: Path) -> None:
    make_image("a.jpg")
    Path("bad.png").write_bytes(b"\x89PNG broken")
    Path("blocker").write_text("x")
    cases = {
        ("missing.jpg", "--model", model_dir): "missing.jpg: no such file",
        ("bad.png", "--model", model_dir): "bad.png: ",
        ("a.jpg", "--model", "no-such-model"): "no-such-model: not a known model",
        ("a.jpg", "-o", "blocker/x.jpg", "--model", model_dir): "blocker/x.jpg: cannot write",
    }
    unshipped = [n for n in list_models() if get_model_info(n).weights.sha256 is None]
    if unshipped:  # a known model whose weights are not in this release
        cases[("a.jpg", "--model", unshipped[0])] = f"{unshipped[0]}: no pretrained weights"
    for args, expected in cases.items():
        result = cli(*args)
        assert result.exit_code == 1, (args, result.stderr)
        assert expected in one_error_line(result), args
    result = cli("a.jpg", "--tile", "7", "--model", model_dir)
    assert result.exit_code == 2 and "--tile" in one_error_line(result)
    assert temp_files(tmp_path) == []


def test_debug_shows_traceback() -> None:
    make_image("a.jpg")
    result = cli("a.jpg", "--model", "no-such-model", "--debug")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("derain: error: no-such-model")


def test_interrupt_leaves_no_partial_output(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image("a.png")

    def interrupted(image: Image.Image, out: io.BufferedWriter, *args: object) -> None:
        out.write(b"half an image")
        raise KeyboardInterrupt

    monkeypatch.setattr("derain.io.writing._save", interrupted)
    result = cli("a.png", "--model", model_dir)
    assert result.exit_code == 130
    assert not Path("a_derained.png").exists() and temp_files(tmp_path) == []
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert cli("a.png", "--model", model_dir).exit_code == 0  # the rerun finishes the job


def test_ray_flag_takes_an_optional_address() -> None:
    from derain.cli import ray_flag_value

    assert ray_flag_value(["run", "in/", "-o", "out/", "--ray"])[-1] == "--ray=local"
    assert ray_flag_value(["run", "in/", "--ray", "-o", "out/"])[2] == "--ray=local"
    assert ray_flag_value(["run", "in/", "--ray", "ray://h:10001"])[2:] == [
        "--ray",
        "ray://h:10001",
    ]
    assert ray_flag_value(["run", "--", "--ray"]) == ["run", "--", "--ray"]
