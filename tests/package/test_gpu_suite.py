"""benchmarks/gpu_suite.sh runs end to end on the CPU (tiny sizes), so a GPU call is not wasted."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from places import ROOT


def _pairs(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for side in ("rain", "norain"):
        (folder / side).mkdir(parents=True)
    for i in (1, 2):
        clean = rng.integers(0, 200, (40, 56, 3), dtype=np.uint8)
        Image.fromarray(clean).save(folder / "norain" / f"{i}.png")
        Image.fromarray(clean + rng.integers(0, 50, clean.shape, dtype=np.uint8)).save(
            folder / "rain" / f"{i}.png"
        )
    return folder


@pytest.mark.slow
def test_the_suite_runs_on_the_cpu_and_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    args = ["--device", "cpu", "--tiny", "--data", str(_pairs(tmp_path / "pairs"))]
    args += ["--out", str(out), "--models", "danet", "--precisions", "fp32", "--sizes", "32x48"]
    args += ["--sections", "correctness", "speed", "official", "video"]
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out")}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sections = json.loads(out.read_text())["sections"]
    row = sections["correctness"]["danet"]
    assert row["fp32"]["psnr"] == pytest.approx(row["cpu fp32"]["psnr"])
    assert row["fp32"]["max_pixel_diff_vs_cpu"] == 0
    speed = sections["speed"]["rows"]["danet fp32 32x48"]
    assert speed["forward_s"] > 0 and speed["run_whole"]["median_s"] > 0
    assert speed["run_auto"]["plan"].startswith("512")
    assert "skipped" in sections["official"]
    if importlib.util.find_spec("av") is not None:
        assert sections["video"]["tiny"]["end_to_end_fps"] > 0
    assert (tmp_path / "out" / "gpu-suite.log").is_file()


def test_the_suite_refuses_a_missing_gpu_in_one_line(tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") and __import__("torch").cuda.is_available():
        pytest.skip("a GPU is present")
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "run", "--out", str(tmp_path / "x")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "CUDA is not available" in done.stdout + done.stderr
