"""derain.scoring.evaluate: the one scorer behind ``derain eval`` and training validation."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from derain import DerainError, Deraining, ImageError
from derain.io.imaging import rgb8
from derain.scoring.evaluate import Scored, evaluate
from derain.scoring.metrics import score_pair
from derain.scoring.pairs import find_pairs

ORIENTATION = 0x0112


def _paired(root: Path, names: tuple[str, ...] = ("10", "2", "1")) -> None:
    rng = np.random.default_rng(4)
    (root / "rain").mkdir(parents=True)
    (root / "norain").mkdir()
    for name in names:
        img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "norain" / f"{name}.png")
        Image.fromarray(255 - img).save(root / "rain" / f"{name}.png")


def test_identity_scores_a_paired_folder_in_natural_order(tmp_path: Path) -> None:
    _paired(tmp_path)
    summary = evaluate(None, find_pairs(tmp_path))
    assert summary.names == ("1.png", "2.png", "10.png")
    expected = [
        score_pair(rgb8(tmp_path / "rain" / n), rgb8(tmp_path / "norain" / n))
        for n in summary.names
    ]
    assert list(summary.scores) == expected
    assert summary.psnr == pytest.approx(np.mean([s.psnr for s in expected]))
    assert summary.ssim < 0.5


def test_model_scores_what_run_returns(tmp_path: Path, model_dir: Path) -> None:
    _paired(tmp_path, ("1", "2"))
    net = Deraining(str(model_dir), device="cpu", tile=None)
    seen: list[Scored] = []
    summary = evaluate(net, find_pairs(tmp_path), on_image=seen.append)
    for scored, score in zip(seen, summary.scores, strict=True):
        assert scored.label == str(tmp_path / "rain" / scored.name)
        assert np.array_equal(scored.rainy, rgb8(tmp_path / "rain" / scored.name))
        assert np.array_equal(scored.clean, rgb8(tmp_path / "norain" / scored.name))
        assert np.array_equal(scored.derained, net.run(rgb8(tmp_path / "rain" / scored.name)))
        assert score == scored.score == score_pair(scored.derained, scored.clean)


def test_in_memory_pairs_and_bytes(tmp_path: Path) -> None:
    _paired(tmp_path, ("1",))
    rain, clean = tmp_path / "rain" / "1.png", tmp_path / "norain" / "1.png"
    from_files = evaluate(None, [(rain, clean)])
    from_memory = evaluate(None, [(rain.read_bytes(), io.BytesIO(clean.read_bytes()))])
    from_arrays = evaluate(None, [(rgb8(rain), Image.open(clean))])
    assert from_files.scores == from_memory.scores == from_arrays.scores
    assert from_memory.names == ("0",)


def test_rainy_photo_is_turned_upright_as_inference_does(tmp_path: Path) -> None:
    # A camera JPEG stored sideways with an EXIF rotation: scored against an upright target.
    upright = np.random.default_rng(1).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # the viewer rotates 90° clockwise
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    stored.save(tmp_path / "sideways.jpg", quality=100, exif=exif.tobytes())
    Image.fromarray(upright).save(tmp_path / "upright.png")
    summary = evaluate(None, [(tmp_path / "sideways.jpg", tmp_path / "upright.png")])
    assert summary.psnr > 30


def test_size_mismatch_is_refused_before_deraining(tmp_path: Path) -> None:
    class NeverRun:
        def run(self, image: object) -> object:
            raise AssertionError("derained a pair that cannot be scored")

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (9, 8)).save(tmp_path / "b.png")
    with pytest.raises(ImageError, match=r"a\.png: size 8×8 differs from its target .*b\.png"):
        evaluate(NeverRun(), [(tmp_path / "a.png", tmp_path / "b.png")])  # type: ignore[arg-type]


def test_on_error_skips_bad_pairs_and_scores_the_rest(tmp_path: Path) -> None:
    _paired(tmp_path, ("1", "2", "3"))
    (tmp_path / "rain" / "2.png").write_bytes(b"broken")
    skipped: list[tuple[str, str]] = []
    summary = evaluate(
        None, find_pairs(tmp_path), on_error=lambda label, exc: skipped.append((label, str(exc)))
    )
    assert summary.names == ("1.png", "3.png")
    assert [label for label, _ in skipped] == [str(tmp_path / "rain" / "2.png")]
    assert "not an image" in skipped[0][1]


def test_unreadable_target_names_the_target(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    with pytest.raises(DerainError, match=r"b\.png: not an image"):
        evaluate(None, [(tmp_path / "a.png", tmp_path / "b.png")])


@pytest.mark.shared
def test_rain12_rainy_input_self_check(rain12: Path) -> None:
    summary = evaluate(None, find_pairs(rain12))
    assert len(summary.scores) == 12
    assert summary.psnr == pytest.approx(30.14, abs=0.01)
    assert summary.ssim == pytest.approx(0.855, abs=0.001)
