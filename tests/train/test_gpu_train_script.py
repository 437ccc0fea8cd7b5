"""tools/gpu_train.sh end to end on the CPU: pack, then train both variants by time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from places import ROOT

SCRIPT = ROOT / "tools" / "gpu_train.sh"
BUDGET_S = 30


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_pack_then_train_both_variants_by_time(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        image = rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)
        Image.fromarray(image).save(photos / f"{i}.png")
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DATA": str(tmp_path / "pack"),
        "OUT": str(tmp_path / "out"),
        "DEVICE": "cpu",
        "DATA_DEVICE": "device",
        "BUDGET_S": str(BUDGET_S),
        "BATCH": "2",
        "CROP": "32",
        "OMP_NUM_THREADS": "1",
    }
    packed = subprocess.run(
        ["bash", str(SCRIPT), "pack", str(photos)], env=env, capture_output=True, text=True
    )
    assert packed.returncode == 0, packed.stderr
    assert len(list((tmp_path / "pack").glob("*.jpg"))) == 4
    start = time.perf_counter()
    trained = subprocess.run(
        ["bash", str(SCRIPT), "train"], env=env, capture_output=True, text=True, timeout=600
    )
    elapsed = time.perf_counter() - start
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    log = (tmp_path / "out" / "train.log").read_text()
    for model in ("danet", "danet-plus"):
        out = tmp_path / "out" / model
        assert (out / "model.safetensors").is_file()
        assert json.loads((out / "config.json").read_text())
        assert "crops_per_s" in (out / "log.csv").read_text().splitlines()[0]
    assert log.count("exported weights to") == 2, log
    # the budgets bound the training; two Python start-ups come on top
    assert elapsed < BUDGET_S + 60, f"{elapsed:.0f} s for a {BUDGET_S} s budget"
