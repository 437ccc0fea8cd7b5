"""Distillation: a teacher's outputs on unlabelled photos as targets for a share of each batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from derain import Deraining
from derain.errors import SettingError, TrainingError
from derain.train import PairedCrops, StepSampler, SyntheticCrops, apply_overrides, get_recipe
from derain.train import train as run_training
from derain.train.data import DataError, DeviceBatches, MixedCrops, MixedSampler
from derain.train.teacher import TeacherRecipe, teacher_image, teacher_targets
from derain.weights import create_model, save_pretrained

#: The toy teacher's brightness gain.
TEACHER_GAIN = 0.6
#: Settings under which 20 steps move a tiny run far enough to measure.
QUICK = {"lr": 2e-3, "warmup_steps": 0, "ema_decay": 0.0, "grad_clip": 0.0}

TINY = {
    "steps": 4,
    "batch_size": 4,
    "crop": 32,
    "workers": 0,
    "log_every": 1,
    "ckpt_every": 2,
    "val": None,
    "threads": 1,
    "synthetic": "light",
}


def _photo(rng: np.random.Generator, h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, 1 - x * y], axis=2) * 150 + 50 + rng.integers(0, 40, (h, w, 3))
    return base.clip(0, 255).astype(np.uint8)


def _write_photos(root: Path, seed: int, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(_photo(rng)).save(root / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clean photos, unlabelled photos, held-out photos and the toy teacher's weights."""
    root = tmp_path_factory.mktemp("distill")
    # A toy teacher that darkens photos to 0.6 of their brightness: the opposite of what the
    # synthetic pairs teach (keep the level), so a student comes nearer to it only through the
    # unlabelled share. Taught in 20 steps on pairs (photo, 0.6 × photo).
    rng = np.random.default_rng(3)
    for sub in ("rain", "norain"):
        (root / "dark" / sub).mkdir(parents=True)
    for i in range(4):
        photo = _photo(rng)
        Image.fromarray(photo).save(root / "dark/rain" / f"{i}.png")
        Image.fromarray((photo * TEACHER_GAIN).astype(np.uint8)).save(
            root / "dark/norain" / f"{i}.png"
        )
    settings = {**TINY, **QUICK, "synthetic": None, "data": str(root / "dark"), "steps": 20}
    cfg = apply_overrides(get_recipe("cpu"), {**settings, "out": str(root / "teacher-run")})
    run_training(cfg, export=str(root / "teacher"), log=_quiet)
    return {
        "clean": _write_photos(root / "clean", 0, 4),
        "unlabelled": _write_photos(root / "unlabelled", 1, 4),
        "held_out": _write_photos(root / "held_out", 2, 3),
        "teacher": root / "teacher",
        "cache": root / "cache",
    }


def _cfg(tmp_path: Path, folders: dict[str, Path], **extra: object):
    settings = {
        **TINY,
        "data": str(folders["clean"]),
        "out": str(tmp_path / "run"),
        "unlabelled": str(folders["unlabelled"]),
        "teacher": str(folders["teacher"]),
        "teacher_cache": str(folders["cache"]),
        **extra,
    }
    return apply_overrides(get_recipe("cpu"), settings)


def _quiet(_: str) -> None:
    pass


def test_targets_are_made_once_and_found_again(tmp_path: Path, folders: dict[str, Path]) -> None:
    lines: list[str] = []
    run_training(_cfg(tmp_path / "a", folders, steps=1), log=lines.append)
    made = [line for line in lines if line.startswith("teacher ")]
    info = json.loads((tmp_path / "a/run/teacher.json").read_text())
    assert info["photos"] == 4 and info["key"] in made[0]
    targets = sorted((folders["cache"] / info["key"]).glob("*.png"))  # beside each: its timing
    assert len(targets) == 4
    stamps = [p.stat().st_mtime_ns for p in targets]
    # A second run (another folder) and a resume read the cache instead of running the teacher.
    again: list[str] = []
    run_training(_cfg(tmp_path / "b", folders, steps=1), log=again.append)
    assert not [line for line in again if line.startswith("teacher ")]
    assert [p.stat().st_mtime_ns for p in targets] == stamps
    # Each target is the teacher's full-size output on its photo.
    photo = folders["unlabelled"] / "0.png"
    expected = Deraining(str(folders["teacher"]), dtype=torch.float32).run(
        np.asarray(Image.open(photo), dtype=np.float32) / 255
    )
    cached = next(p for p in targets if p.name.startswith("0-"))
    got = np.asarray(Image.open(cached), dtype=np.float32) / 255
    assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6


def test_another_recipe_or_teacher_is_another_cache_entry(
    tmp_path: Path, folders: dict[str, Path]
) -> None:
    photos = sorted(folders["unlabelled"].iterdir())[:1]
    cache = tmp_path / "cache"
    _, plain = teacher_targets(photos, str(folders["teacher"]), TeacherRecipe(), cache)
    _, twice = teacher_targets(photos, str(folders["teacher"]), TeacherRecipe(passes=2), cache)
    _, other = teacher_targets(photos, "danet", TeacherRecipe(), cache)
    assert len({plain, twice, other}) == 3
    assert plain.endswith("-fp32") and twice.endswith("-fp32-x2")


class _Halve:
    """A stand-in teacher that halves an image's brightness (mirror-independent)."""

    calls = 0

    def run(self, image: np.ndarray) -> np.ndarray:
        self.calls += 1
        return image * np.float32(0.5)


class _LeftDark:
    """A stand-in teacher that darkens the left half only (changes under a mirror)."""

    def run(self, image: np.ndarray) -> np.ndarray:
        out = image.copy()
        out[:, : image.shape[1] // 2] *= 0.5
        return out


def test_teacher_recipes() -> None:
    image = Image.fromarray(np.full((4, 6, 3), 200, np.uint8))
    value = lambda im: int(np.asarray(im)[0, 0, 0])  # noqa: E731
    halve = _Halve()
    assert value(teacher_image(halve, image, TeacherRecipe())) == 100  # type: ignore[arg-type]
    assert value(teacher_image(halve, image, TeacherRecipe(passes=2))) == 50  # type: ignore[arg-type]
    # The rain layer (200 − 100) taken 1.5 times: 200 − 150.
    scaled = teacher_image(halve, image, TeacherRecipe(rain_scale=1.5))  # type: ignore[arg-type]
    assert value(scaled) == 50
    halve.calls = 0
    teacher_image(halve, image, TeacherRecipe(flips=True))  # type: ignore[arg-type]
    assert halve.calls == 4
    # Averaged over the four mirror images, a left-side darkening reaches both sides half-way.
    flipped = np.asarray(teacher_image(_LeftDark(), image, TeacherRecipe(flips=True)))  # type: ignore[arg-type]
    assert flipped[0, 0, 0] == flipped[0, -1, 0] == 150


class _VeilAndStreak:
    """A stand-in teacher that takes away a veil of 20 grey levels and ``taken`` of the 80 that
    the streak at column 30 adds."""

    def __init__(self, taken: int) -> None:
        self.taken = taken

    def run(self, image: np.ndarray) -> np.ndarray:
        out = image - np.float32(20 / 255)
        out[:, 30] -= np.float32(self.taken / 255)
        return out


def test_streaks_only_scales_the_streaks_and_takes_the_veil_once() -> None:
    rainy = np.full((64, 64, 3), 100, np.uint8)
    rainy[:, 30] = 180  # a streak from top to bottom
    image = Image.fromarray(rainy)
    recipe = TeacherRecipe(rain_scale=1.5, streaks_only=True)
    assert recipe.name == "s1.5-streaks"

    def target(taken: int, recipe: TeacherRecipe) -> np.ndarray:
        out = teacher_image(_VeilAndStreak(taken), image, recipe)  # type: ignore[arg-type]
        return np.asarray(out, np.int16)[32, :, 0]

    plain = target(40, TeacherRecipe(rain_scale=1.5))
    half = target(40, recipe)  # the teacher left 40 of the streak's 80
    assert plain[10] == 70 and half[10] == 80  # the veil: taken 1.5 times, and once
    assert 80 <= half[30] < 120 - 15  # more of the streak than the teacher took, not too much
    whole = target(80, recipe)  # the teacher took it all: no dark line where it was
    assert whole[30] == 80 and target(80, TeacherRecipe(rain_scale=1.5))[30] == 30
    with pytest.raises(SettingError, match="teacher_rain_scale"):
        TeacherRecipe(streaks_only=True)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("unlabelled_share", "0"),
        ("unlabelled_share", "1"),
        ("unlabelled_share", "nan"),
        ("unlabelled_share", "0.1"),  # no unlabelled crop in a batch of 4
        ("teacher_passes", "0"),
        ("teacher_rain_scale", "-1"),
        ("teacher_streaks_only", "true"),  # with teacher_rain_scale 1 it would do nothing
        ("rain_left_on", "everywhere"),
        ("rain_left_on", "unlabelled"),  # with rain_left_weight 0 it would do nothing
    ],
)
def test_bad_distillation_settings_are_refused_before_training(
    tmp_path: Path, folders: dict[str, Path], setting: str, value: str
) -> None:
    cfg = apply_overrides(_cfg(tmp_path, folders), [f"{setting}={value}"])
    with pytest.raises(TrainingError, match=setting):
        run_training(cfg, log=_quiet)
    assert not (tmp_path / "run" / "last.safetensors").exists()


@pytest.mark.parametrize("data_device", ["host", "device"])
@pytest.mark.parametrize("part", ["synthetic", "unlabelled"])
def test_rain_left_on_a_part_reads_that_part_of_each_batch(
    tmp_path: Path,
    folders: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    part: str,
    data_device: str,
) -> None:
    """The term sees the 2 crops of its part of a batch of 4, on both data paths: the
    unlabelled ones are those whose target is the toy teacher's darkening (photo − target ≈
    0.4 · photo everywhere), the synthetic ones have sparse light rain on top of their clean
    crop."""
    from derain.train import losses

    seen: list[tuple[int, float]] = []
    measure = losses.rain_left

    def spy(derained: torch.Tensor, clean: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
        seen.append((len(clean), float((rainy - clean).mean())))
        return measure(derained, clean, rainy)

    monkeypatch.setattr(losses, "rain_left", spy)
    cfg = _cfg(
        tmp_path,
        folders,
        steps=2,
        rain_left_weight=1.0,
        rain_left_on=part,
        data_device=data_device,
    )
    run_training(cfg, log=_quiet)
    assert [n for n, _ in seen] == [2, 2]
    for _, added in seen:
        assert (added > 0.15) == (part == "unlabelled"), added


def test_rain_left_on_a_part_needs_the_unlabelled_photos(
    tmp_path: Path, folders: dict[str, Path]
) -> None:
    cfg = _cfg(tmp_path, folders, unlabelled=None, rain_left_weight=1.0, rain_left_on="synthetic")
    with pytest.raises(SettingError, match=r"rain_left_on .*--unlabelled"):
        run_training(cfg, log=_quiet)
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_a_missing_unlabelled_folder_is_named(tmp_path: Path, folders: dict[str, Path]) -> None:
    cfg = _cfg(tmp_path, folders, unlabelled=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere"):
        run_training(cfg, log=_quiet)


def test_mixed_batches_hold_both_kinds_with_aligned_pairs(tmp_path: Path) -> None:
    """Synthetic crops first, then unlabelled (photo, target) crops cut and turned alike."""
    rng = np.random.default_rng(4)
    pairs = []
    for i in range(3):
        photo = _photo(rng)
        # The "target" is the photo less 40 everywhere, so any misaligned crop or flip shows.
        Image.fromarray(photo).save(tmp_path / f"p{i}.png")
        Image.fromarray((photo.astype(int) - 40).clip(0).astype(np.uint8)).save(
            tmp_path / f"t{i}.png"
        )
        pairs.append((tmp_path / f"p{i}.png", tmp_path / f"t{i}.png"))
    clean = sorted(tmp_path.glob("p*.png"))
    synthetic = SyntheticCrops(clean, 32, "light", seed=0)
    unlabelled = PairedCrops(pairs, 32, seed=9, cache=True, upright=True)
    sampler = MixedSampler([StepSampler(3, 3, 5, seed=0), StepSampler(3, 1, 5, seed=9)])
    data = MixedCrops([synthetic, unlabelled])
    for keys in sampler:
        assert [k[0] for k in keys] == [0, 0, 0, 1]
        rainy, target = data[keys[-1]]
        assert torch.allclose(rainy - target, torch.full_like(rainy, 40 / 255), atol=1e-6)
    # On the device path the unlabelled crops are the host path's, crop for crop.
    device = DeviceBatches(
        synthetic,
        StepSampler(3, 3, 5, seed=0),
        torch.device("cpu"),
        (unlabelled, StepSampler(3, 1, 5, seed=9)),
    )
    for (rainy, target), keys in zip(device, sampler, strict=True):
        assert rainy.shape == (4, 3, 32, 32)
        host_rainy, host_target = data[keys[-1]]
        assert torch.equal(rainy[-1], host_rainy) and torch.equal(target[-1], host_target)


@pytest.mark.parametrize("data_device", ["host", "device"])
def test_resume_with_distillation_is_exact(
    tmp_path: Path, folders: dict[str, Path], data_device: str
) -> None:
    settings = {"steps": 4, "ckpt_every": 2, "data_device": data_device}
    run_training(_cfg(tmp_path / "a", folders, **settings), log=_quiet)
    split = _cfg(tmp_path / "b", folders, **settings)
    run_training(split, stop_at=2, log=_quiet)
    run_training(split, resume=True, log=_quiet)
    a = load_file(str(tmp_path / "a/run/last.safetensors"))
    b = load_file(str(tmp_path / "b/run/last.safetensors"))
    for key in a:
        if key != "rng.torch":
            assert torch.equal(a[key], b[key]), key


def _distance_to_teacher(weights: Path, folders: dict[str, Path]) -> float:
    student = Deraining(str(weights), dtype=torch.float32)
    teacher = Deraining(str(folders["teacher"]), dtype=torch.float32)
    gaps = []
    for photo in sorted(folders["held_out"].iterdir()):
        pixels = np.asarray(Image.open(photo), dtype=np.float32) / 255
        gaps.append(float(np.abs(student.run(pixels) - teacher.run(pixels)).mean()))
    return float(np.mean(gaps))


def test_the_student_learns_the_teacher(tmp_path: Path, folders: dict[str, Path]) -> None:
    """On photos it never saw, the student ends closer to the teacher than it started, and
    closer than the same run without the unlabelled photos."""
    start = create_model("danet")
    with torch.no_grad():  # the student starts as (nearly) the identity
        start.dsn_out.weight.zero_()
        start.rsn_out.weight.zero_()
    save_pretrained(start, tmp_path / "start", variant="danet")
    before = _distance_to_teacher(tmp_path / "start", folders)
    common = {**QUICK, "init": str(tmp_path / "start"), "steps": 20}
    cfg = _cfg(tmp_path / "distil", folders, unlabelled_share=0.75, **common)
    run_training(cfg, export=str(tmp_path / "student"), log=_quiet)
    control = _cfg(tmp_path / "control", folders, unlabelled=None, **common)
    run_training(control, export=str(tmp_path / "control-student"), log=_quiet)
    after = _distance_to_teacher(tmp_path / "student", folders)
    without = _distance_to_teacher(tmp_path / "control-student", folders)
    assert after < 0.5 * before and after < 0.5 * without, (before, after, without)


def test_unlabelled_crops_are_never_laid_flat(tmp_path: Path) -> None:
    """Real rain stays upright: no 90° turn of an unlabelled crop, unless asked for."""
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (64, 1, 3))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    pair = [(tmp_path / "ramp.png", tmp_path / "ramp.png")]

    def laid_flat(upright: bool) -> int:
        crops = PairedCrops(pair, 32, seed=1, upright=upright)
        flat = 0
        for i in range(40):
            rainy, _ = crops[(i, 0)]
            across_rows = float((rainy[:, 1:, :] - rainy[:, :-1, :]).abs().mean())
            across_cols = float((rainy[:, :, 1:] - rainy[:, :, :-1]).abs().mean())
            flat += across_rows > across_cols  # the ramp now runs down the crop: turned 90°
        return flat

    assert laid_flat(upright=True) == 0
    assert laid_flat(upright=False) > 5  # all 8 turns: about half are 90° or 270°
