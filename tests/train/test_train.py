"""derain.train on tiny generated data: runs, validates, checkpoints, resumes, exports."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from derain import Deraining
from derain.errors import TrainingError
from derain.train import (
    DataError,
    PairedCrops,
    StepSampler,
    apply_overrides,
    get_recipe,
    lr_at,
    train,
)

TINY = {
    "steps": 6,
    "batch_size": 2,
    "crop": 32,
    "workers": 0,
    "log_every": 1,
    "ckpt_every": 3,
    "val_every": 3,
    "threads": 1,
}


def _photo(rng: np.random.Generator, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth colourful image with some texture, as uint8."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, 1 - x * y], axis=2) * 200 + rng.integers(0, 40, (h, w, 3))
    return base.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(_photo(rng)).save(root / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def paired_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("paired")
    (root / "rain").mkdir()
    (root / "norain").mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        clean = _photo(rng)
        rainy = clean.astype(int)
        rainy[:, ::7] += 60  # vertical streaks
        Image.fromarray(clean).save(root / "norain" / f"{i}.png")
        Image.fromarray(rainy.clip(0, 255).astype(np.uint8)).save(root / "rain" / f"{i}.png")
    return root


def _cfg(tmp_path: Path, data: Path, **extra: object):
    return apply_overrides(
        get_recipe("cpu"), {**TINY, "data": str(data), "out": str(tmp_path / "run"), **extra}
    )


def test_synthetic_run_validates_checkpoints_and_exports(
    tmp_path: Path, clean_dir: Path, paired_dir: Path
) -> None:
    cfg = _cfg(tmp_path, clean_dir, synthetic="light", val=str(paired_dir))
    result = train(cfg, export=str(tmp_path / "export"), log=lambda _: None)
    run = tmp_path / "run"
    assert result.step == 6
    for name in (
        "last.safetensors",
        "log.csv",
        "curves.png",
        "samples.png",
        "best/model.safetensors",
    ):
        assert (run / name).is_file(), name
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 7
    assert result.best_psnr is not None and np.isfinite(result.best_psnr)
    # The export loads through the public front door and derains an image.
    out = Deraining(str(tmp_path / "export"), device="cpu").run(_photo(np.random.default_rng(5)))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def _losses(run: Path) -> list[float]:
    """The training loss column of a run's log.csv, step by step."""
    with open(run / "log.csv", newline="") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def test_paired_run_learns(tmp_path: Path, paired_dir: Path) -> None:
    cfg = _cfg(tmp_path, paired_dir, steps=12, val=str(paired_dir), val_every=12, lr=2e-3)
    result = train(cfg, log=lambda _: None)
    losses = _losses(tmp_path / "run")
    assert result.step == 12
    assert np.mean(losses[-3:]) < np.mean(losses[:3])  # the loss goes down on learnable data


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_resume_is_bit_identical(tmp_path: Path, clean_dir: Path) -> None:
    settings = {"synthetic": "light", "steps": 10, "ckpt_every": 5, "val": None}
    full = _cfg(tmp_path / "a", clean_dir, **settings)
    train(full, log=lambda _: None)
    split = _cfg(tmp_path / "b", clean_dir, **settings)
    train(split, stop_at=5, log=lambda _: None)  # an interrupted run: stops after step 5
    train(split, resume=True, log=lambda _: None)
    a, b = (
        _weights(tmp_path / "a/run/last.safetensors"),
        _weights(tmp_path / "b/run/last.safetensors"),
    )
    assert a.keys() == b.keys()
    for key in a:
        if key != "rng.torch":
            assert torch.equal(a[key], b[key]), key


def test_fine_tune_from_weights_file(tmp_path: Path, paired_dir: Path) -> None:
    first = _cfg(tmp_path / "a", paired_dir, steps=2, val=None)
    train(first, export=str(tmp_path / "w"), log=lambda _: None)
    tuned = _cfg(tmp_path / "b", paired_dir, steps=2, val=None, init=str(tmp_path / "w"))
    assert train(tuned, log=lambda _: None).step == 2


def test_bad_data_is_reported_before_training(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    for sub in ("input", "target"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(2)
    Image.fromarray(_photo(rng)).save(root / "input/ok.png")
    Image.fromarray(_photo(rng)).save(root / "target/ok.png")
    Image.fromarray(_photo(rng)).save(root / "input/lonely.png")
    (root / "input/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(_photo(rng)).save(root / "target/broken.png")
    Image.fromarray(_photo(rng, 40, 40)).save(root / "input/odd.png")
    Image.fromarray(_photo(rng)).save(root / "target/odd.png")
    cfg = _cfg(tmp_path, root)
    with pytest.raises(DataError) as err:
        train(cfg, log=lambda _: None)
    text = str(err.value)
    assert "lonely.png" in text and "broken.png" in text and "odd.png" in text
    assert not (tmp_path / "run").exists()  # nothing started


def test_sampler_is_a_function_of_the_step() -> None:
    whole = list(StepSampler(10, 4, 6, seed=3))
    tail = list(StepSampler(10, 4, 6, seed=3, start_step=4))
    assert whole[4:] == tail
    ranks = [list(StepSampler(10, 4, 6, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    for step, batch in enumerate(whole):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(batch)
    # every epoch is a permutation of the data
    flat = [key for batch in whole for key in batch]
    assert sorted(i for e, i in flat if e == 0) == list(range(10))


def test_zoom_out_shows_more_of_the_photo_and_keeps_pairs_aligned(tmp_path: Path) -> None:
    # The rainy image is the clean one plus 40 everywhere, and both are a horizontal ramp,
    # so a crop's span of values tells how wide a window it came from.
    ramp = np.tile(np.linspace(0, 200, 256), (256, 1))
    for sub, offset in (("norain", 0), ("rain", 40)):
        (tmp_path / sub).mkdir()
        image = np.repeat((ramp + offset)[:, :, None], 3, axis=2).round().astype(np.uint8)
        Image.fromarray(image).save(tmp_path / sub / "0.png")

    def spans(zoom_out: float) -> list[float]:
        data = PairedCrops.from_folder(tmp_path, crop=32, seed=5, zoom_out=zoom_out)
        out = []
        for epoch in range(24):
            rainy, clean = (t[0].numpy() for t in data[epoch, 0])
            assert rainy.shape == clean.shape == (32, 32)
            assert np.abs(rainy - clean - 40 / 255).max() < 1.5 / 255  # still aligned
            out.append(float(np.ptp(clean)))  # rotations/flips keep the span
        return out

    plain, zoomed = spans(1.0), spans(4.0)
    window = 31 * 200 / 255 / 255  # a 32-pixel window of the ramp
    assert max(abs(s - window) for s in plain) < 1.5 / 255
    assert max(zoomed) > 2.5 * window and min(zoomed) > 0.9 * window
    for bad in (0.5, float("nan"), float("inf")):
        with pytest.raises(DataError, match="zoom_out"):
            PairedCrops.from_folder(tmp_path, crop=32, zoom_out=bad)


def test_schedules() -> None:
    paper = get_recipe("paper")
    assert lr_at(paper, 0, 1000, 10) == pytest.approx(4e-4)
    assert lr_at(paper, 80 * 10, 1000, 10) == pytest.approx(4e-4 * 0.8)
    cpu = get_recipe("cpu")
    total = cpu.steps
    assert lr_at(cpu, 0, total, 10) < lr_at(cpu, cpu.warmup_steps, total, 10)
    assert lr_at(cpu, total - 1, total, 10) < 0.01 * cpu.lr
    # Continuing trained weights: a gentler peak and a shorter warm-up than a fresh start.
    cont = get_recipe("cpu-continue")
    assert cont.lr < cpu.lr and cont.warmup_steps < cpu.warmup_steps
    assert not cont.identity_init
    assert lr_at(cont, cont.steps - 1, cont.steps, 10) < 0.01 * cont.lr


def test_overrides_from_strings() -> None:
    cfg = apply_overrides(
        get_recipe("paper"), ["lr=1e-3", "synthetic=heavy", "amp=false", "steps=none"]
    )
    assert (cfg.lr, cfg.synthetic, cfg.amp, cfg.steps) == (1e-3, "heavy", False, None)
    with pytest.raises(ValueError, match="unknown setting"):
        apply_overrides(cfg, ["nope=1"])
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("fast")


DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from derain.train import apply_overrides, get_recipe, train
    cfg = apply_overrides(get_recipe("cpu"), dict(
        data=sys.argv[1], synthetic="light", out=sys.argv[2], steps=3, batch_size=4, crop=32,
        workers=0, ckpt_every=100, val=None, threads=1))
    import derain.train.trainer as t
    seen = {}
    original = t._ema_update
    def spy(ema, params, decay, step):
        seen["sum"] = float(sum(p.detach().double().sum() for p in params))
        original(ema, params, decay, step)
    t._ema_update = spy
    train(cfg, device="cpu", log=lambda _: None)
    print("PARAMSUM", repr(seen["sum"]))
    """
)


@pytest.mark.slow
def test_two_process_gloo_stays_in_sync(tmp_path: Path, clean_dir: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            str(script),
            str(clean_dir),
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sums = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("PARAMSUM")]
    assert len(sums) == 2 and sums[0] == sums[1]  # both ranks hold identical weights
    assert (tmp_path / "run/last.safetensors").is_file()  # written by rank 0


def test_several_validation_sets_are_each_logged(tmp_path: Path, paired_dir: Path) -> None:
    other = tmp_path / "heavy-set"
    (other / "rain").mkdir(parents=True)
    (other / "norain").mkdir()
    for sub in ("rain", "norain"):  # a second set: the first one's first pair only
        (other / sub / "0.png").write_bytes((paired_dir / sub / "0.png").read_bytes())
    val = os.pathsep.join([str(paired_dir), str(other)])
    result = train(_cfg(tmp_path, paired_dir, steps=3, val=val), log=lambda _: None)
    rows = (tmp_path / "run/log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[-4:-2] == [f"psnr_{paired_dir.name}", "psnr_heavy-set"]
    last = dict(zip(header, rows[-1].split(","), strict=True))
    per_set = [float(last[f"psnr_{paired_dir.name}"]), float(last["psnr_heavy-set"])]
    # The mean over the sets (each weighing the same) is the validation score that picks the best.
    assert float(last["val_psnr"]) == pytest.approx(np.mean(per_set), abs=1e-3)
    assert result.best_psnr == pytest.approx(np.mean(per_set), abs=1e-3)


@pytest.mark.parametrize("native_bf16", [False, True])
def test_cpu_step_uses_bf16_only_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch, native_bf16: bool
) -> None:
    from derain import create_model
    from derain.train import trainer
    from derain.train.losses import DANetLoss

    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: native_bf16)
    torch.manual_seed(0)
    net = create_model("danet")
    seen: list[torch.dtype] = []
    net.register_forward_hook(lambda _m, _i, out: seen.append(out.rain.dtype))  # a conv output
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    step = trainer.OptimStep(net, opt, DANetLoss(), torch.device("cpu"), amp=True)
    x = torch.rand(2, 3, 32, 32)
    terms = step(x, x)
    assert seen == [torch.bfloat16 if native_bf16 else torch.float32]
    assert torch.isfinite(terms.total)
    assert terms.total.dtype == torch.float32


def test_the_trainer_adds_the_rain_left_term_when_the_setting_asks(
    tmp_path: Path, clean_dir: Path
) -> None:
    # The same seed, photos, crops and rain: only the setting differs, so the first step's
    # loss differs by the weighted term (the identity-initialised network returns its input).
    one = {"synthetic": "heavy", "steps": 1, "val": None}
    train(_cfg(tmp_path / "plain", clean_dir, **one), log=lambda _: None)
    tilted = _cfg(tmp_path / "tilted", clean_dir, **one, rain_left_weight=1.0)
    train(tilted, log=lambda _: None)
    assert _losses(tmp_path / "tilted/run")[0] > _losses(tmp_path / "plain/run")[0] + 0.01


def test_a_negative_rain_left_weight_is_refused_before_training(
    tmp_path: Path, clean_dir: Path
) -> None:
    bad = _cfg(tmp_path, clean_dir, synthetic="heavy", val=None, rain_left_weight=-1.0)
    with pytest.raises(TrainingError, match="rain_left_weight"):
        train(bad, log=lambda _: None)
    assert not (tmp_path / "run" / "last.safetensors").exists()
