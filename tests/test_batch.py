"""Batches (``derain run``): output names, outputs checked first, earlier outputs, run
records, what a user sees.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import cli, make_image, one_error_line
from PIL import Image
from places import EXAMPLES

from derain import Deraining
from derain.io import write_image_atomic

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


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


# --- 7: outputs checked before any image is derained ---------------------------------------


def test_output_below_a_file_is_refused_before_the_model_loads() -> None:
    for i in range(2):
        make_image(f"in/{i}.png", seed=i)
    Path("blocker").write_text("x")
    # A model that cannot load: reaching it would mean work began before the check.
    result = cli("in", "-o", "blocker/deep/out", "--model", "no-such-model")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("derain: error:")]
    assert len(errors) == 1, result.stderr  # checked once, for both files
    assert "Not a directory: blocker" in errors[0] and "stopped" in errors[0]
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
    from derain.io import read_made_by

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


# --- 19: --save-rain layers a person can read --------------------------------------------------


def test_save_rain_layers_show_the_rain_with_a_fixed_scale() -> None:
    from derain.io.imaging import open_image

    example = EXAMPLES / "rocket_rain.png"
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
