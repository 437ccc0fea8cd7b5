"""The shipped weights really derain the bundled example (skipped while none are shipped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from derain import Deraining, WeightsNotAvailableError, list_models
from derain.metrics import score_pair

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_shipped_weights_bring_the_example_closer_to_clean(name: str) -> None:
    try:
        derain = Deraining(name, device="cpu")
    except WeightsNotAvailableError:
        pytest.skip(f"no shipped {name} weights")
    rainy, clean = EXAMPLES / "rocket_rain.png", EXAMPLES / "rocket_clean.png"
    before = score_pair(rainy, clean)
    after = score_pair(derain.run(rainy), clean)
    assert after.psnr > before.psnr
    assert after.ssim > before.ssim
