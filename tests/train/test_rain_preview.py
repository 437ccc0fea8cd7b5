"""``derain rain-preview``: the format the name says, a bounded grid."""

from __future__ import annotations

from pathlib import Path

import pytest
from clitools import cli, make_image, one_error_line
from PIL import Image

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


@pytest.mark.parametrize(("name", "fmt"), [("x.jpg", "JPEG"), ("x.webp", "WEBP"), ("x.png", "PNG")])
def test_rain_preview_writes_the_format_the_name_says(name: str, fmt: str) -> None:
    make_image("photos/a.png", 64, 64)
    result = cli("rain-preview", "photos", "-o", name, "-n", "1", "--crop", "32")
    assert result.exit_code == 0, result.stderr
    with Image.open(name) as im:
        assert im.format == fmt


def test_rain_preview_shows_presets_side_by_side() -> None:
    make_image("photos/a.png", 64, 64)
    result = cli(
        "rain-preview",
        "photos",
        "-o",
        "g.png",
        "-n",
        "1",
        "--crop",
        "32",
        "--preset",
        "wide",
        "--preset",
        "real",
    )
    assert result.exit_code == 0, result.stderr
    with Image.open("g.png") as im:
        assert im.size == (3 * 32 + 2 * 4, 32)  # clean | wide | real
    bad = cli("rain-preview", "photos", "-o", "h.png", "--preset", "wide", "--preset", "drizzle")
    assert bad.exit_code != 0
    assert "drizzle" in one_error_line(bad)
    assert not Path("h.png").exists()


@pytest.mark.parametrize("name", ["x.heic", "noext"])
def test_rain_preview_refuses_a_name_without_a_format(name: str) -> None:
    make_image("photos/a.png", 64, 64)
    result = cli("rain-preview", "photos", "-o", name, "-n", "1", "--crop", "32")
    assert result.exit_code != 0
    assert name in one_error_line(result)
    assert not Path(name).exists()


# --- 20: rain-preview size bound -------------------------------------------------------------


@pytest.mark.parametrize(("crop", "pairs"), [("10000", "1"), ("2048", "8"), ("1024", "200")])
def test_rain_preview_refuses_a_huge_grid_before_any_work(crop: str, pairs: str) -> None:
    import warnings

    make_image("photos/a.png", 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning
        result = cli("rain-preview", "photos", "-o", "x.png", "--crop", crop, "-n", pairs)
    assert result.exit_code != 0
    line = one_error_line(result)
    assert "MP" in line and "limit" in line
    assert not Path("x.png").exists()
