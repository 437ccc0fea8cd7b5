"""ONNX export and ONNX Runtime through Deraining: same numbers, same front class, digests.

One export of the tiny random-weight model serves the module; torch's dynamo exporter takes
tens of seconds even for it, so the module is marked slow.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import derain
from derain import DANet, DerainError, Deraining, WeightsError
from derain.cli import app, with_default_verb
from derain.engines.onnx import INPUT_CONVENTION, OnnxEngine, OnnxModel, export_onnx
from derain.io import read_made_by
from derain.models.weight_files import tensors_sha256
from derain.record import RunRecord
from derain.weights import sha256_of

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

pytestmark = pytest.mark.slow

runner = CliRunner()


@pytest.fixture(scope="module")
def export_run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The tiny model of ``model_dir`` exported with ``derain export``, and what it printed."""
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    with warnings.catch_warnings():
        # A user must not be told the model is exported in training mode: it is not.
        warnings.filterwarnings("error", message=".*training mode.*")
        result = runner.invoke(app, with_default_verb(["export", str(model_dir), "-o", str(out)]))
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def exported(export_run: tuple[Path, str]) -> Path:
    return export_run[0]


@pytest.fixture(scope="module")
def torch_net(model_dir: Path) -> DANet:
    return Deraining(model_dir, device="cpu", dtype="fp32").model


def test_metadata(exported: Path, torch_net: DANet, model_dir: Path) -> None:
    meta = OnnxModel(exported).metadata
    assert meta["derain.size_multiple"] == str(torch_net.size_multiple)
    assert meta["derain.input"] == INPUT_CONVENTION == "RGB float32 NCHW 0..1"
    assert meta["derain.model"] == str(model_dir)
    assert meta["derain.weights_sha256"] == tensors_sha256(torch_net)
    assert Deraining(exported).weights_sha256 == Deraining(model_dir).weights_sha256
    assert json.loads(meta["derain.config"])["channels"] == torch_net.cfg.channels
    assert "dynamo" in meta["derain.exporter"]
    side = json.loads(exported.with_suffix(".json").read_text())
    assert side["sha256"] == sha256_of(exported)


@pytest.mark.parametrize(("h", "w"), [(64, 64), (48, 112)])
def test_matches_pytorch_fp32(exported: Path, torch_net: DANet, h: int, w: int) -> None:
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
    with torch.inference_mode():
        ref = torch_net(x)
    derained, rain, mask = OnnxModel(exported, device="cpu").run(x.numpy(), with_layers=True)
    assert derained.shape == (1, 3, h, w)
    assert np.abs(derained - ref.derained.numpy()).max() < 1e-3
    assert np.abs(rain - ref.rain.numpy()).max() < 1e-3
    assert np.abs(mask - ref.mask.numpy()).max() < 1e-3


def test_deraining_runs_onnx_like_pytorch(exported: Path, model_dir: Path) -> None:
    """A size that is no multiple of 16, tiled and whole, with layers: same as PyTorch."""
    rgb = np.random.default_rng(0).integers(0, 256, (75, 101, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    for tile in (None, 64):
        by_onnx = Deraining(exported, tile=tile)
        assert isinstance(by_onnx.engine, OnnxEngine) and by_onnx.model is None
        by_torch = Deraining(model_dir, device="cpu", dtype="fp32", tile=tile)
        out = by_onnx.run(image, return_layers=True)
        ref = by_torch.run(image, return_layers=True)
        assert isinstance(out.image, Image.Image) and out.image.size == image.size
        diff = np.abs(np.asarray(out.image, dtype=int) - np.asarray(ref.image, dtype=int))
        assert diff.max() <= 1
        tensor = torch.rand(2, 3, 40, 50)
        assert torch.allclose(by_onnx.run(tensor), by_torch.run(tensor), atol=1e-3)


def test_cli_runs_onnx_model(exported: Path, tmp_path: Path) -> None:
    Image.fromarray(np.full((30, 20, 3), 128, np.uint8)).save(tmp_path / "in.png")
    args = ["run", str(tmp_path / "in.png"), "-m", str(exported), "-o", str(tmp_path / "o.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o.png").size == (20, 30)


def test_tampered_file_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.onnx"
    shutil.copy(exported, copy)
    shutil.copy(exported.with_suffix(".json"), copy.with_suffix(".json"))
    Deraining(copy)  # the untouched copy loads
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 does not match"):
        Deraining(copy)
    copy.with_suffix(".json").unlink()
    with pytest.raises(WeightsError, match="sha256 does not match"):
        OnnxModel(copy, sha256=sha256_of(exported))


def test_bad_files_and_options(exported: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match=r"junk\.onnx: not a valid ONNX model"):
        Deraining(junk)
    with pytest.raises(derain.WeightsNotAvailableError, match="not found"):
        Deraining(tmp_path / "missing.onnx")
    with pytest.raises(DerainError, match="float32"):
        Deraining(exported, dtype=torch.float16)
    with pytest.raises(DerainError, match="no PyTorch network"):
        Deraining(exported).save_pretrained(tmp_path / "x")
    with pytest.raises(DerainError, match=r"must end in \.onnx"):
        export_onnx(DANet(), tmp_path / "x.bin")


def test_missing_onnxruntime_is_one_line(
    exported: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(DerainError, match=r"needs onnxruntime: pip install \"derain\[onnx\]\""):
        Deraining(exported)
    result = runner.invoke(app, ["export", "nope", "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "derain: error: nope" in result.output


def _altered(exported: Path, out: Path, *, keep_digest: bool) -> Path:
    """``exported`` with five initializers scaled by -3, saved without a ``.json``."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(exported))
    for init in proto.graph.initializer[:5]:
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * -3, init.name))
    if not keep_digest:  # an older export, or a file whose digest was stripped
        kept = [p for p in proto.metadata_props if p.key != "derain.initializers_sha256"]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
    onnx.save(proto, str(out))
    return out


def test_altered_file_without_json_is_refused(exported: Path, tmp_path: Path) -> None:
    """The initializer digest inside the file catches what a missing .json cannot."""
    altered = _altered(exported, tmp_path / "altered.onnx", keep_digest=True)
    with pytest.raises(WeightsError, match=r"altered\.onnx: its weights do not match"):
        Deraining(altered)
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(tmp_path / "a.png")
    args = ["run", str(tmp_path / "a.png"), "-m", str(altered), "-o", str(tmp_path / "o.png")]
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and "its weights do not match" in result.output
    assert not (tmp_path / "o.png").exists()


def test_unverifiable_file_warns_and_records_its_own_digest(exported: Path, tmp_path: Path) -> None:
    altered = _altered(exported, tmp_path / "altered.onnx", keep_digest=False)
    with pytest.warns(derain.DerainWarning, match=r"altered\.onnx: cannot check"):
        model = OnnxModel(altered)
    assert model.weights_sha256 == sha256_of(altered) != OnnxModel(exported).weights_sha256
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "o.png"
    image = str(tmp_path / "a.png")
    result = runner.invoke(app, ["run", image, "-m", str(altered), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "cannot check" in result.output
    record = RunRecord.parse(read_made_by(out))
    assert record is not None and record.weights_sha256 == sha256_of(altered)
    # The genuine file's run must redo that output, not skip it as done.
    result = runner.invoke(app, ["run", image, "-m", str(exported), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output
    record = RunRecord.parse(read_made_by(out))
    assert record is not None and record.weights_sha256 == OnnxModel(exported).weights_sha256


def test_export_says_what_it_does(export_run: tuple[Path, str]) -> None:
    """A progress line before the long export; the file carries its initializer digest."""
    exported, output = export_run
    lines = output.splitlines()
    assert lines[0].startswith("exporting ") and lines[-1].startswith("wrote ")
    model = OnnxModel(exported)
    assert model.verified and len(model.metadata["derain.initializers_sha256"]) == 64
