"""``derain eval --real``: models judged on rainy photos without a clean twin, and the report."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import cli, one_error_line
from PIL import Image
from places import ROOT

from derain import Deraining
from derain.scoring.evaluate_real import compare, evaluate_real
from derain.scoring.noreference import rain_left, streak_angle, streak_energy, texture_lost
from derain.weights import create_model, save_pretrained

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


def _rainy_photo(seed: int, h: int = 64, w: int = 96) -> np.ndarray:
    """A smooth scene with thin bright streaks about 10° from vertical."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    scene = np.stack([x, y, 1 - x * y], axis=2) * 120 + 40
    for _ in range(14):
        x0, y0, length = rng.integers(0, w), rng.integers(0, h), rng.integers(12, 30)
        for t in range(length):
            yy, xx = y0 + t, x0 + int(t * 0.18)
            if 0 <= yy < h and 0 <= xx < w:
                scene[yy, xx] += 90
    return scene.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real")
    for i in range(3):
        Image.fromarray(_rainy_photo(i)).save(root / f"photo{i}.png")
    return root


@pytest.fixture(scope="module")
def keeper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that returns (a blur of) its input: it leaves the rain."""
    folder = tmp_path_factory.mktemp("keeper")
    torch.manual_seed(0)
    model = create_model("danet")
    with torch.no_grad():
        model.dsn_out.weight.zero_()
        model.rsn_out.weight.zero_()
    save_pretrained(model, folder, variant="danet")
    return folder


def _count_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    runs: list[str] = []
    real_run = Deraining.run

    def counting_run(self, image, **kwargs):
        runs.append(self.source)
        return real_run(self, image, **kwargs)

    monkeypatch.setattr(Deraining, "run", counting_run)
    return runs


def test_real_photos_table_verdict_csv_and_cache(
    photos: Path, keeper: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _count_runs(monkeypatch)
    args = ["eval", "--real", photos, "-m", keeper, "-m", "danet", "--cache", "cache"]
    result = cli(*args, "--csv", "real.csv")
    assert result.exit_code == 0, result.stderr
    assert "danet leaves less rain than" in result.stdout and "on 3 of 3 photos" in result.stdout
    assert "texture no worse on" in result.stdout and "s / MP" in result.stdout
    assert len(runs) == 6  # each model once per photo
    with open("real.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["photo"], r["model"]) for r in rows][:2] == [
        ("photo0.png", str(keeper)),
        ("photo0.png", "danet"),
    ]
    # The numbers are the no-reference measures of each output against its photo.
    rainy = np.asarray(Image.open(photos / "photo0.png"), dtype=np.float32) / 255
    out = np.asarray(Deraining("danet").run(Image.open(photos / "photo0.png")), np.float32) / 255
    angle = streak_angle(rainy)
    assert float(rows[1]["rain_left"]) == pytest.approx(rain_left(rainy, out, angle), abs=1e-4)
    assert float(rows[1]["texture_lost"]) == pytest.approx(texture_lost(rainy, out), abs=1e-5)
    # A rerun reads every output from the cache; a new model is the only one that runs.
    runs.clear()
    assert cli(*args).exit_code == 0 and runs == []
    runs.clear()
    result = cli(*args, "-m", "danet-plus")
    assert result.exit_code == 0 and len(runs) == 3 and all("danet-plus" in r for r in runs)
    assert result.stdout.count("leaves less rain than") == 2


def test_the_evaluator_gives_the_verdict_the_measures_give(photos: Path, keeper: Path) -> None:
    """compare() is the ship rule's clause over noreference's own numbers, photo by photo."""
    models = [("keep", Deraining(str(keeper))), ("danet", Deraining("danet"))]
    paths = sorted(photos.iterdir())
    evaluation = evaluate_real(models, paths)
    verdict = compare(evaluation, "keep", "danet")
    expected = []
    for path in paths:
        rainy = np.asarray(Image.open(path), dtype=np.float32) / 255
        outs = [np.asarray(m.run(Image.open(path)), np.float32) / 255 for _, m in models]
        angle = streak_angle(rainy)
        energy = streak_energy(rainy, angle)
        if rain_left(rainy, outs[1], angle, energy) < rain_left(rainy, outs[0], angle, energy):
            expected.append(path.stem)
    assert verdict.less_rain == expected and verdict.photos == 3
    assert compare(evaluation, "danet", "keep").less_rain == []


def test_the_benchmark_reads_its_verdict_from_the_evaluator(
    photos: Path, keeper: Path, tmp_path: Path
) -> None:
    spec = importlib.util.spec_from_file_location("real_photos", ROOT / "benchmarks/real_photos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_photos"] = module
    spec.loader.exec_module(module)
    code = module.main(
        [str(photos), "-c", "danet", "-b", str(keeper), "--out", str(tmp_path / "out")]
    )
    report = json.loads((tmp_path / "out/real_photos.json").read_text())
    evaluation = evaluate_real(
        [("b", Deraining(str(keeper))), ("c", Deraining("danet"))], sorted(photos.iterdir())
    )
    verdict = compare(evaluation, "b", "c")
    assert report["verdict"]["less_rain_left"] == len(verdict.less_rain) == 3
    assert report["verdict"]["pass"] is verdict.passes and code == (0 if verdict.passes else 1)
    photo = report["per_photo"]["photo1"]
    assert photo["rain_left_candidate"] < photo["rain_left_baseline"]
    assert (tmp_path / "out/photo1.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --data"),
        (["--data", "d", "--real", "r"], "give either --data"),
        (["--real", "r", "--identity"], "--identity scores paired folders only"),
    ],
)
def test_eval_usage_problems_exit_2(args: list[str], message: str) -> None:
    result = cli("eval", *args)
    assert result.exit_code == 2 and message in one_error_line(result)


def test_a_missing_or_empty_real_folder_is_one_line() -> None:
    result = cli("eval", "--real", "nowhere")
    assert result.exit_code == 1 and "nowhere: no such folder" in one_error_line(result)
    Path("empty").mkdir()
    result = cli("eval", "--real", "empty")
    assert result.exit_code == 1 and "no image files" in one_error_line(result)


def test_a_bad_photo_is_reported_and_the_rest_judged(photos: Path, keeper: Path) -> None:
    folder = Path("mixed")
    folder.mkdir()
    for p in photos.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    result = cli("eval", "--real", folder, "-m", keeper, "--no-cache")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("derain: error:")]
    assert "broken.png" in errors[0] and "1 of 4 photo(s) could not be judged" in errors[-1]
    assert "3 real photos" in result.stdout


def _report_checks(path: Path, rows: int, images_per_row: int) -> None:
    """Open the report in headless Chromium: every image loaded at 1:1, sorting works."""
    from browser import chromium

    text = path.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained, works offline
    driver = chromium(path.parent)
    try:
        driver.get(path.resolve().as_uri())
        images = driver.find_elements("css selector", "table.photos img")
        assert len(images) == rows * images_per_row
        for img in images:
            natural, shown = driver.execute_script(
                "const r = arguments[0].getBoundingClientRect();"
                "return [arguments[0].naturalWidth, r.width];",
                img,
            )
            assert natural > 0 and shown == natural  # loaded, and shown at 1:1 (not shrunk)
        first_names = lambda: [  # noqa: E731
            r.text for r in driver.find_elements("css selector", "table.photos td.name")
        ]
        before = first_names()
        header = driver.find_elements("css selector", "table.photos th[data-col]")[0]
        header.click()
        ascending = first_names()
        header.click()
        assert ascending == sorted(before) and first_names() == ascending[::-1]
        driver.save_screenshot(str(path.with_suffix(".png")))
    finally:
        driver.quit()


def test_real_report_in_a_browser(photos: Path, keeper: Path) -> None:
    result = cli("eval", "--real", photos, "-m", keeper, "-m", "danet", "--report", "r.html")
    assert result.exit_code == 0, result.stderr
    _report_checks(Path("r.html"), rows=3, images_per_row=3)  # input + two models
    text = Path("r.html").read_text()
    assert "leaves less rain than" in text


def test_paired_report_shows_the_worst_first(keeper: Path) -> None:
    for i in range(3):
        clean = _rainy_photo(10 + i) // 2
        rainy = clean.astype(int) + (i * 40)  # pair 2 is the rainiest: worst for a keeper
        Path("pairs/rain").mkdir(parents=True, exist_ok=True)
        Path("pairs/norain").mkdir(parents=True, exist_ok=True)
        Image.fromarray(clean).save(f"pairs/norain/{i}.png")
        Image.fromarray(rainy.clip(0, 255).astype(np.uint8)).save(f"pairs/rain/{i}.png")
    result = cli("eval", "--data", "pairs", "-m", keeper, "--report", "p.html")
    assert result.exit_code == 0, result.stderr
    text = Path("p.html").read_text()
    assert text.index(">2.png<") < text.index(">1.png<") < text.index(">0.png<")
    _report_checks(Path("p.html"), rows=3, images_per_row=3)  # input, output, clean
