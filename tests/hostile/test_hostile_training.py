"""Training that is killed (SIGKILL, Ctrl-C) at any instant and resumed ends bit-identical.

Already in test_train: resume after a clean stop (``stop_at``) is bit-identical, and a data
folder with unpaired, corrupt and odd-sized files is reported before training starts.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import interruptible
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from derain.cli import app
from derain.train import apply_overrides, get_recipe, train

SCRIPT = "import sys; from derain.cli import main; sys.argv[0] = 'derain'; main()"
SETTINGS = {
    "steps": 12,
    "batch_size": 2,
    "crop": 32,
    "workers": 0,
    "ckpt_every": 1,
    "val": "none",
    "threads": 1,
}
STEPS_KILLED = 24  # ~0.6 s a step: long enough for ten kills, each after some progress
LOG_COLUMNS_COMPARED = ("step", "lr", "loss", "ssim")  # sec_per_step is a wall-clock time


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(0)
    for i in range(4):
        y, x = np.mgrid[0:48, 0:64] / 64
        base = np.stack([x, y, 1 - x * y], axis=2) * 200 + rng.integers(0, 40, (48, 64, 3))
        Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(root / f"{i}.png")
    return root


def _command(data: Path, out: Path, resume: bool, steps: int = 12) -> list[str]:
    args = [sys.executable, "-c", SCRIPT, "train", "--data", str(data), "--out", str(out)]
    args += ["--recipe", "cpu", "--synthetic", "light", "--device", "cpu"]
    for key, value in {**SETTINGS, "steps": steps, "log_every": 1}.items():
        args += ["--set", f"{key}={value}"]
    return [*args, "--resume"] if resume else args


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train_to_the_end(data: Path, out: Path, steps: int = 12) -> None:
    resume = (out / "last.safetensors").is_file()
    proc = subprocess.run(
        _command(data, out, resume, steps),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def _temps(out: Path) -> list[Path]:
    return list(out.glob(".*.tmp"))


def _kill_during_a_checkpoint_write(proc: subprocess.Popen[bytes], out: Path) -> bool:
    """Kill as soon as a new checkpoint temp file appears; True if it was still there after."""
    before = set(_temps(out))
    while proc.poll() is None:
        new = set(_temps(out)) - before
        if new:
            proc.kill()
            proc.wait()
            return all(p.exists() for p in new)
        time.sleep(0.002)
    return False


def _kill_after_some_progress(proc: subprocess.Popen[bytes], out: Path, delay: float) -> None:
    """Kill ``delay`` seconds after the run has written its first checkpoint."""
    started = time.time_ns()
    last = out / "last.safetensors"
    while proc.poll() is None and not (last.is_file() and last.stat().st_mtime_ns > started):
        time.sleep(0.005)
    time.sleep(delay)
    proc.kill()


def _log(out: Path) -> list[tuple[str, ...]]:
    rows = [line.split(",") for line in (out / "log.csv").read_text().splitlines()]
    index = [rows[0].index(c) for c in LOG_COLUMNS_COMPARED]
    return [tuple(r[i] for i in index) for r in rows]


@pytest.mark.slow
def test_killed_ten_times_then_resumed_is_bit_identical(clean_dir: Path, tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _train_to_the_end(clean_dir, reference, STEPS_KILLED)

    rng = random.Random(20220723)
    mid_write = 0
    for kill in range(10):
        resume = (killed / "last.safetensors").is_file()
        proc = subprocess.Popen(
            _command(clean_dir, killed, resume, STEPS_KILLED),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )
        if kill == 0:  # during start-up, before the first checkpoint
            time.sleep(rng.uniform(0.5, 3.0))
            proc.kill()
        elif kill % 3 == 1:  # inside a checkpoint write
            mid_write += _kill_during_a_checkpoint_write(proc, killed)
        else:  # anywhere in the next step or so: forward, backward, log, plot, checkpoint
            _kill_after_some_progress(proc, killed, rng.uniform(0.0, 0.8))
        assert proc.wait(timeout=60) == -signal.SIGKILL, f"kill {kill}: the run ended first"
    assert mid_write >= 2, "too few kills hit a checkpoint write"
    _train_to_the_end(clean_dir, killed, STEPS_KILLED)  # --resume until done

    a = load_file(str(reference / "last.safetensors"))
    b = load_file(str(killed / "last.safetensors"))
    compared = [k for k in a if k.split(".")[0] in ("model", "ema", "optim")]
    assert a.keys() == b.keys() and len(compared) > 100
    for key in compared:
        assert torch.equal(a[key], b[key]), key
    assert _log(killed) == _log(reference)  # no row lost or repeated across the kills
    assert _temps(killed) == []  # the temp files of killed checkpoint writes were removed


@pytest.fixture
def tiny_run(tmp_path: Path, clean_dir: Path):
    settings = {**SETTINGS, "steps": 3, "val": None, "synthetic": "light", "log_every": 1}
    return apply_overrides(
        get_recipe("cpu"), {**settings, "data": str(clean_dir), "out": str(tmp_path / "run")}
    )


@pytest.mark.parametrize("log_left", ["empty", "half a row", "stale rows"])
def test_resume_survives_a_log_left_by_a_kill(tiny_run, tmp_path: Path, log_left: str) -> None:
    # A kill while the log was being rewritten on resume (or created) left it broken.
    run = tmp_path / "run"
    train(tiny_run, stop_at=1, log=lambda _: None)
    header = (run / "log.csv").read_text().splitlines()[0]
    text = {
        "empty": "",
        "half a row": (run / "log.csv").read_text() + "2,1e-0",
        "stale rows": f"{header}\n1,1,1,1,1,,\n5,1,1,1,1,,\n9,1,1,1,1,,\n",
    }[log_left]
    (run / "log.csv").write_text(text)
    assert train(tiny_run, resume=True, log=lambda _: None).step == 3
    steps = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()]
    assert steps[0] == "step" and steps[-1] == "3" and "5" not in steps and "9" not in steps


def test_a_ctrl_c_that_python_swallowed_still_stops_training(
    tiny_run, tmp_path: Path, ctrl_c: None
) -> None:
    # CPython only prints a KeyboardInterrupt raised in a weak-reference callback (an import's
    # module lock): training used to run on to the end and exit 0.
    def log(line: str) -> None:
        if line.startswith("step 1/"):
            with contextlib.suppress(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(tiny_run, log=log)
    assert load_file(str(tmp_path / "run" / "last.safetensors")).keys()
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "1"]


def test_fresh_run_in_an_old_run_folder_starts_a_fresh_log(tiny_run, tmp_path: Path) -> None:
    # A run killed before its first checkpoint is restarted without --resume.
    (tmp_path / "run").mkdir()
    header = "step,lr,loss,ssim,sec_per_step,val_psnr,val_ssim"
    (tmp_path / "run" / "log.csv").write_text(f"{header}\n1,9,9,9,9,,\n2,9,9,9,9,,\n")
    train(tiny_run, log=lambda _: None)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "1", "2", "3"] and ",9,9," not in rows[1]


def test_train_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 1
    expected = f"derain: error: {tmp_path / 'none'}: training data folder not found"
    assert result.stderr.strip() == expected
    Image.new("RGB", (48, 48)).save(tmp_path / "a.png")
    args = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--resume"]
    result = CliRunner().invoke(app, [*args, "--synthetic", "light", "--set", "crop=32"])
    assert result.exit_code == 1 and "no checkpoint to resume from" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ctrl_c_during_training_is_one_line_and_resumable(clean_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _command(clean_dir, out, resume=False),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        preexec_fn=interruptible,
    )
    while not (out / "last.safetensors").is_file():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "derain: error: interrupted"
    _train_to_the_end(clean_dir, out)
    assert load_file(str(out / "last.safetensors")).keys() and _temps(out) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "nonsense=1"], "unknown setting 'nonsense'"),
        (["--set", "steps=abc"], "steps: expected a whole number, got 'abc'"),
        (["--set", "lr=fast"], "lr: expected a number, got 'fast'"),
        (["--set", "steps"], "needs a value"),
        (["--set", "schedule=foo"], "schedule 'foo': use step or cosine"),
        (["--set", "data_device=gpu"], "data_device 'gpu'"),
        (["--set", "rain_left_weight=-1"], "rain_left_weight -1.0: must be 0 or more"),
        (["--set", "zoom_out=0.5"], "zoom_out 0.5"),
        (["--set", "batch_size=0"], "batch_size 0: must be 1 or more"),
        (["--set", "unlabelled_share=2"], "unlabelled_share 2.0"),
        (["--set", "teacher_passes=0"], "teacher_passes 0"),
        (["--synthetic", "nosuch"], "synthetic 'nosuch'"),
        (["--recipe", "nosuch"], "unknown recipe 'nosuch'"),
        (["--time-budget", "-5m"], "time budget '-5m'"),
    ],
)
def test_malformed_settings_exit_2_before_any_work(
    tmp_path: Path, clean_dir: Path, args: list[str], message: str
) -> None:
    """The documented rule: a malformed or unknown argument is exit code 2, one line."""
    out = tmp_path / "run"
    base = ["train", "--data", str(clean_dir), "--out", str(out), "--synthetic", "light"]
    result = CliRunner().invoke(app, [*base, *args])
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing was started
