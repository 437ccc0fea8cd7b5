"""`derain export-hub`: a folder the Hub path loads, offline, from a pre-filled cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clitools import cli, one_error_line
from hubcache import prefill
from huggingface_hub import ModelCard, constants

from derain import Deraining
from derain.models.hub_card import export_hub
from derain.models.registry import get_model_info
from derain.weights import sha256_of

REPO = "derain-test/danet"


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # hf_hub_download reads these attributes at call time (see tests/models/test_hub.py).
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_export_hub_folder_loads_offline_as_the_shipped_model(
    tmp_path: Path, offline_cache: Path
) -> None:
    folder = tmp_path / "danet-hub"
    result = cli("export-hub", "danet", folder, "--repo-id", REPO)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    # The shipped bytes travel: the digest is the registry's, and config.json records it.
    recorded = get_model_info("danet").weights.sha256
    assert sha256_of(folder / "model.safetensors") == recorded
    assert json.loads((folder / "config.json").read_text())["sha256"] == recorded

    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "derain"
    assert card.data.pipeline_tag == "image-to-image"
    assert card.data.license == "mit"
    assert "deraining" in card.data.tags
    assert f'Deraining("hf-hub:{REPO}")' in card.text
    rain12 = get_model_info("danet").weights.score("Rain12")
    assert rain12 is not None
    assert f"{rain12.psnr:.2f} / {rain12.ssim:.4f}" in card.text  # the registry's score

    prefill(folder, offline_cache, REPO)
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    from_hub = Deraining(f"hf-hub:{REPO}", device="cpu", dtype="fp32")
    shipped = Deraining("danet", device="cpu", dtype="fp32")
    assert from_hub.weights_sha256 == shipped.weights_sha256
    np.testing.assert_array_equal(from_hub.run(image), shipped.run(image))


def test_own_weights_get_a_card_without_scores(
    tmp_path: Path, model_dir: Path, offline_cache: Path
) -> None:
    written = export_hub(model_dir, tmp_path / "mine", repo_id="me/mine")
    card = ModelCard.load(written.card)
    assert "No scores are recorded" in card.text
    assert card.data.library_name == "derain"
    prefill(written.folder, offline_cache, "me/mine")
    image = np.full((24, 24, 3), 128, np.uint8)
    np.testing.assert_array_equal(
        Deraining("hf-hub:me/mine", device="cpu").run(image),
        Deraining(model_dir, device="cpu").run(image),
    )


def test_a_folder_with_other_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = cli("export-hub", "danet", folder)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert str(folder) in line and "notes.txt" in line
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_exporting_a_folder_onto_itself_is_refused(tmp_path: Path, model_dir: Path) -> None:
    before = (model_dir / "model.safetensors").read_bytes()
    result = cli("export-hub", model_dir, model_dir)
    assert result.exit_code == 2
    assert "is the model being exported" in one_error_line(result)
    assert (model_dir / "model.safetensors").read_bytes() == before
