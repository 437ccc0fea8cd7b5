"""derain.train.losses: the paper's loss, and the optional rain-left term."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from derain.models.danet import DANetOutput
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


def test_rain_left_rows_measure_only_the_images_they_name() -> None:
    clean, rainy = _scene()
    streaks = rainy > clean
    left = torch.where(streaks, clean + 0.1, clean)  # image 0 keeps some rain, image 1 none
    out = _output(torch.cat([left, clean]))
    clean2, rainy2 = torch.cat([clean, clean]), torch.cat([rainy, rainy])
    first = DANetLoss(rain_left_weight=1.0, rain_left_rows=slice(0, 1))(out, clean2, rainy2)
    second = DANetLoss(rain_left_weight=1.0, rain_left_rows=slice(1, None))(out, clean2, rainy2)
    both = DANetLoss(rain_left_weight=1.0)(out, clean2, rainy2)
    assert first.rain_left is not None and second.rain_left is not None
    assert both.rain_left is not None
    assert float(first.rain_left) == pytest.approx(0.075, abs=1e-6)
    assert float(second.rain_left) == 0.0
    assert float(both.rain_left) == pytest.approx(0.0375, abs=1e-6)  # per unit of both rains
    # The rest of the loss is the same: only the term's images differ.
    assert float(first.total - second.total) == pytest.approx(0.075, abs=1e-6)


def test_rain_left_weight_needs_the_rainy_input_and_a_sane_value() -> None:
    clean, _ = _scene()
    with pytest.raises(ValueError, match="rainy input"):
        DANetLoss(rain_left_weight=1.0)(_output(clean), clean)
    with pytest.raises(ValueError, match=">= 0"):
        DANetLoss(rain_left_weight=-0.1)
