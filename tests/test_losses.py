"""derain.train.losses: the paper's loss, and the optional rain-left term."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from derain.errors import TrainingError
from derain.models.danet import DANetOutput
from derain.train import apply_overrides, get_recipe, train
from derain.train.losses import DANetLoss, rain_left


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A clean image and the same with bright vertical streaks on every fourth column."""
    torch.manual_seed(0)
    clean = torch.rand(1, 3, 16, 16) * 0.6
    rainy = clean.clone()
    rainy[..., ::4] += 0.3
    return clean, rainy


def _output(derained: torch.Tensor) -> DANetOutput:
    low = F.interpolate(derained, scale_factor=0.5, mode="bilinear", align_corners=False)
    return DANetOutput(derained, low, torch.zeros_like(low), torch.zeros_like(low))


def test_rain_left_is_zero_when_the_rain_is_gone_and_grows_with_what_stays() -> None:
    clean, rainy = _scene()
    half = clean + 0.5 * (rainy - clean)
    assert float(rain_left(clean, clean, rainy)) == 0.0
    # Streaks of 0.3 on a quarter of the columns: 0.3 above the output's mean excess of 0.075.
    assert float(rain_left(rainy, clean, rainy)) == pytest.approx(0.225, abs=1e-6)
    assert float(rain_left(half, clean, rainy)) == pytest.approx(0.1125, abs=1e-6)
    # Removing too much (darker than the clean image) is not rain left.
    assert float(rain_left(clean - 0.2, clean, rainy)) == pytest.approx(0.0, abs=1e-6)
    # Brightness added where no rain fell is not counted either: it is the Charbonnier's job.
    elsewhere = clean.clone()
    elsewhere[..., 1::4] += 0.3
    assert float(rain_left(elsewhere, clean, rainy)) == 0.0


def test_rain_left_cannot_be_lowered_by_darkening_the_whole_output() -> None:
    clean, rainy = _scene()
    half = clean + 0.5 * (rainy - clean)
    for shift in (-0.05, 0.05):
        assert float(rain_left(half + shift, clean, rainy)) == pytest.approx(
            float(rain_left(half, clean, rainy)), abs=1e-6
        )


def test_default_loss_is_the_papers_with_or_without_the_rainy_input() -> None:
    clean, rainy = _scene()
    out = _output(clean + 0.5 * (rainy - clean))
    paper = DANetLoss()(out, clean)
    given = DANetLoss()(out, clean, rainy)
    assert torch.equal(paper.total, given.total)
    assert given.rain_left is None


def test_rain_left_weight_makes_leaving_rain_cost_more_than_removing_too_much() -> None:
    clean, rainy = _scene()
    delta = 0.1
    streaks = rainy > clean
    left = _output(torch.where(streaks, clean + delta, clean))  # some rain stays
    eager = _output(torch.where(streaks, clean - delta, clean))  # the same error, darker
    plain = DANetLoss()
    # The paper's loss barely tells them apart (Charbonnier is symmetric, SSIM nearly) ...
    gap = float(plain(left, clean).total - plain(eager, clean).total)
    assert abs(gap) < 1e-3
    # ... the weighted term charges the rain that stays, by weight × its brightness.
    tilted = DANetLoss(rain_left_weight=0.5)
    t_left, t_eager = tilted(left, clean, rainy), tilted(eager, clean, rainy)
    assert t_left.rain_left is not None and t_eager.rain_left is not None
    # (A quarter of the columns: 0.75 · delta above the output's mean excess.)
    assert float(t_left.rain_left) == pytest.approx(0.75 * delta, abs=1e-6)
    assert float(t_eager.rain_left) == 0.0
    assert float(t_left.total - t_eager.total) == pytest.approx(gap + 0.5 * 0.75 * delta, abs=1e-6)


def test_rain_left_weight_needs_the_rainy_input_and_a_sane_value() -> None:
    clean, _ = _scene()
    with pytest.raises(ValueError, match="rainy input"):
        DANetLoss(rain_left_weight=1.0)(_output(clean), clean)
    with pytest.raises(ValueError, match=">= 0"):
        DANetLoss(rain_left_weight=-0.1)


def _photos(root: Path) -> Path:
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _cfg(tmp_path: Path, name: str, **extra: object):
    tiny = {
        "steps": 1,
        "batch_size": 2,
        "crop": 32,
        "workers": 0,
        "log_every": 1,
        "ckpt_every": 1,
        "val": None,
        "threads": 1,
        "synthetic": "heavy",
    }
    out = {"data": str(_photos(tmp_path)), "out": str(tmp_path / name)}
    return apply_overrides(get_recipe("cpu"), {**tiny, **out, **extra})


def _first_loss(run: Path) -> float:
    return float((run / "log.csv").read_text().splitlines()[1].split(",")[2])


def test_the_trainer_adds_the_term_when_the_setting_asks(tmp_path: Path) -> None:
    # The same seed, photos, crops and rain: only the setting differs, so the first step's
    # loss differs by the weighted term (the identity-initialised network returns its input).
    train(_cfg(tmp_path, "plain"), log=lambda _: None)
    train(_cfg(tmp_path, "tilted", rain_left_weight=1.0), log=lambda _: None)
    assert _first_loss(tmp_path / "tilted") > _first_loss(tmp_path / "plain") + 0.01


def test_a_negative_weight_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="rain_left_weight"):
        train(_cfg(tmp_path, "bad", rain_left_weight=-1.0), log=lambda _: None)
    assert not (tmp_path / "bad" / "last.safetensors").exists()
