"""``derain eval``: a bad pair is skipped, the CSV checked before the model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from clitools import cli, make_image, one_error_line

from derain import Deraining

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


# --- 8: eval goes on past a bad pair --------------------------------------------------------


def test_eval_reports_a_bad_pair_skips_it_and_goes_on(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in (1, 2, 3, 4):
        make_image(f"data/rain/{i}.png", seed=i)
        make_image(f"data/norain/{i}.png", seed=10 + i)
    make_image("data/norain/2.png", h=16, w=16)  # size mismatch
    Path("data/rain/3.png").write_bytes(b"not an image")
    derained: list[object] = []
    real_run = Deraining.run

    def counting_run(self, image, **kwargs):
        derained.append(image)
        return real_run(self, image, **kwargs)

    monkeypatch.setattr(Deraining, "run", counting_run)
    result = cli("eval", "--data", "data", "--model", model_dir, "--csv", "s.csv")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("derain: error:")]
    assert len(errors) == 3, result.stderr
    assert "rain/2.png" in errors[0] and "size" in errors[0]
    assert "rain/3.png" in errors[1]
    assert "2 of 4 pair(s) could not be scored" in errors[2]
    assert len(derained) == 2  # the bad pairs were rejected before any derain
    assert "Traceback" not in result.stderr
    rows = Path("s.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1.png", "4.png"]
    assert "│      2 │" in result.stdout  # the table scores the two good pairs


def test_eval_csv_that_cannot_be_written_is_found_before_the_model_loads() -> None:
    make_image("data/rain/1.png")
    make_image("data/norain/1.png")
    Path("blocker").write_text("x")
    result = cli("eval", "--data", "data", "--model", "no-such-model", "--csv", "blocker/s.csv")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "blocker/s.csv" in line and "Not a directory" in line
