"""Training at device scale, on the CPU: batches made on the device, a step that never waits
for the host, and runs fitted to a time budget."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import derain
from derain.train import StepSampler, SyntheticCrops, apply_overrides, get_recipe, train
from derain.train.data import DeviceBatches
from derain.train.recipes import parse_duration

TINY = {
    "batch_size": 2,
    "crop": 32,
    "workers": 0,
    "log_every": 100,
    "ckpt_every": 100,
    "val": None,
    "threads": 1,
    "synthetic": "wide",
    "data_device": "device",
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 small textured photos of a few sizes (one smaller than a crop, so it is enlarged)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(16):
        h, w = (28, 40) if i == 0 else (40 + 4 * (i % 3), 56)
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        base = np.stack([x, y, 1 - x * y], axis=2) * 200 + rng.integers(0, 40, (h, w, 3))
        Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(root / f"{i:02d}.png")
    return root


def _cfg(tmp_path: Path, data: Path, **extra: object):
    settings = {**TINY, "data": str(data), "out": str(tmp_path / "run"), **extra}
    return apply_overrides(get_recipe("cpu"), settings)


@pytest.mark.parametrize("zoom_out", [1.0, 2.0])
def test_device_batches_cut_the_crops_the_host_path_cuts(photos: Path, zoom_out: float) -> None:
    """Cache, windows, zoom-out and the 8 flips/rotations: the NumPy path's clean crops."""
    paths = sorted(photos.iterdir())
    dataset = SyntheticCrops(paths, 32, "wide", seed=3, zoom_out=zoom_out)
    sampler = StepSampler(len(paths), batch_size=4, total_steps=8, seed=3)
    device = DeviceBatches(dataset, sampler, torch.device("cpu"))
    assert all(p.dtype == torch.uint8 and p.shape[0] == 3 for p in device.photos)
    assert min(min(p.shape[1:]) for p in device.photos) >= 32  # the small one was enlarged
    flips = set()
    for keys in sampler:
        for key in keys:
            ours = device.clean_crop(key)
            _, theirs = dataset[key]
            # exact without zoom; the zoomed windows are shrunk by torch, not PIL
            atol = 1e-6 if zoom_out == 1.0 else 12 / 255
            assert torch.allclose(ours, theirs, atol=atol), key
            flips.add(int(np.random.default_rng([3, *key]).integers(8)) if zoom_out == 1 else 0)
    assert zoom_out != 1.0 or len(flips) == 8  # every flip/rotation was checked
    rainy, clean = next(iter(device))
    assert rainy.shape == clean.shape == (4, 3, 32, 32)
    assert rainy.min() >= 0 and rainy.max() <= 1 and not torch.equal(rainy, clean)


def test_device_batches_resume_exactly(tmp_path: Path, photos: Path) -> None:
    settings = {"steps": 6, "ckpt_every": 3}
    train(_cfg(tmp_path / "a", photos, **settings), log=lambda _: None)
    split = _cfg(tmp_path / "b", photos, **settings)
    train(split, stop_at=3, log=lambda _: None)
    train(split, resume=True, log=lambda _: None)
    a = load_file(str(tmp_path / "a/run/last.safetensors"))
    b = load_file(str(tmp_path / "b/run/last.safetensors"))
    for key in a:
        if key != "rng.torch":
            assert torch.equal(a[key], b[key]), key


def test_real_is_drawn_on_the_device_too(tmp_path: Path, photos: Path) -> None:
    """``real`` has its batched generator: no fallback to host batches."""
    lines: list[str] = []
    train(_cfg(tmp_path, photos, steps=2, synthetic="real"), log=lines.append)
    assert any("crops and rain drawn there" in line for line in lines), lines


HOST_WAITS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")


def _count_host_waits(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count derain's calls of the Tensor methods that make the host wait for the device.

    Only calls made from derain's own code count: torch's CPU Adam reads its step counters
    (CPU tensors) with ``.item()``, which the fused CUDA Adam the trainer uses there does not.
    """
    counts = dict.fromkeys(HOST_WAITS, 0)
    package = str(Path(derain.__file__).parent)
    for name in HOST_WAITS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            if sys._getframe(1).f_code.co_filename.startswith(package):
                counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def test_steps_do_not_wait_for_the_device(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of device values happen at log steps and the end only, never per step."""
    counts = _count_host_waits(monkeypatch)
    seen = []
    for steps in (3, 7):  # 14 samples: one epoch of the 16 photos in both runs
        for name in counts:
            counts[name] = 0
        train(_cfg(tmp_path / str(steps), photos, steps=steps), log=lambda _: None)
        seen.append(dict(counts))
    assert seen[0] == seen[1], f"host waits grow with the steps: {seen}"
    assert sum(seen[0].values()) > 0  # the counter works: the end logs and checkpoints


def test_parse_duration() -> None:
    assert parse_duration("90") == 90.0
    assert parse_duration("8m") == 480.0
    assert parse_duration("1.5h") == 5400.0
    for bad in ("", "m", "-3s", "soon", "inf"):
        with pytest.raises(ValueError, match="time budget"):
            parse_duration(bad)


def test_time_budget_stops_on_time_and_exports(tmp_path: Path, photos: Path) -> None:
    """The budget is an upper bound on the whole call, and most of it is used."""
    import torch._dynamo  # noqa: F401  (Adam imports it once per process: >10 s when busy)

    budget = 12.0
    logs: list[str] = []
    cfg = _cfg(tmp_path, photos, time_budget=budget, log_every=5, steps=None)
    start = time.perf_counter()
    result = train(cfg, export=str(tmp_path / "model"), log=logs.append)
    elapsed = time.perf_counter() - start
    assert elapsed <= budget * 1.05, f"ran {elapsed:.1f} s of a {budget} s budget"
    # Not far too early either. The plan is fitted to the warm-up's step rate; on a loaded
    # 2-core machine a later step can take twice as long, and the guard then gives up the
    # step that no longer fits, which is up to a quarter of this small budget (the full suite
    # measured 8.9 s of 12 under load), so the floor is half.
    assert elapsed >= budget * 0.5, f"stopped after {elapsed:.1f} s of a {budget} s budget"
    assert (tmp_path / "model/model.safetensors").is_file()
    plan = [line for line in logs if line.startswith("time budget:")]
    assert plan, logs
    rows = (tmp_path / "run/log.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert header[-2:] == ["crops", "crops_per_s"]
    assert int(last[header.index("crops")]) == result.step * 2
    assert float(last[header.index("crops_per_s")]) > 0


def test_cli_time_budget(tmp_path: Path, photos: Path) -> None:
    """--time-budget replaces the recipe's steps; a bad one is a one-line error."""
    from clitools import cli, one_error_line

    shown = cli(
        "train", "--data", photos, "--recipe", "cpu", "--time-budget", "8m", "--show-config"
    )
    assert shown.exit_code == 0, shown.output
    assert "time_budget = 480.0" in shown.output and "steps = None" in shown.output
    capped = cli(
        "train", "--data", photos, "--time-budget", "90s", "--steps", "50", "--show-config"
    )
    assert "steps = 50" in capped.output
    bad = cli("train", "--data", photos, "--time-budget", "soon")
    assert bad.exit_code != 0
    assert "time budget 'soon'" in one_error_line(bad)
