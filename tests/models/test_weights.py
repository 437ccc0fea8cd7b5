"""Safetensors weights I/O: round trips, and every malformed or altered file refused in one line.

What can be detected depends on whether a digest was recorded. With ``config.json`` beside
the weights (what ``save_pretrained`` writes), its sha256 catches any change to any byte. A
lone ``.safetensors`` file is only checked structurally: a change to the header (the length
prefix or the JSON) is refused, as are tensors that do not fit the architecture or are not
finite; but a flip inside the tensor data that leaves the value finite is NOT detectable
without a recorded digest, and loads silently with one altered number.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from derain import Deraining
from derain.errors import ModelNotFoundError, WeightsError, WeightsNotAvailableError
from derain.models.danet import DANet, DANetConfig
from derain.models.registry import get_model_info, list_models
from derain.weights import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_file,
    parse_source,
    resolve_model,
    save_pretrained,
    sha256_of,
    shipped_weights_dir,
)

TINY = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)


@pytest.fixture
def model() -> DANet:
    torch.manual_seed(0)
    return DANet(TINY).eval()


@pytest.fixture
def saved(model: DANet, tmp_path: Path) -> Path:
    """A folder written by save_pretrained."""
    save_pretrained(model, tmp_path / "saved")
    return tmp_path / "saved"


@pytest.fixture
def lone(saved: Path, tmp_path: Path) -> Path:
    """The same weights as a lone file: no config.json, no digest."""
    path = tmp_path / "lone" / "tiny.safetensors"
    path.parent.mkdir()
    shutil.copy(saved / WEIGHTS_NAME, path)
    return path


def _weights(net: DANet) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in net.named_parameters()}


def _same(a: DANet, b: DANet) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _header_size(path: Path) -> int:
    return struct.unpack("<Q", path.read_bytes()[:8])[0]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF if offset < 8 + _header_size(path) else 0x01
    path.write_bytes(data)


def _refused(source: Path | str, named: Path | str, cls: type[Exception] = WeightsError) -> str:
    """Loading ``source`` raises ``cls`` with a one-line message naming ``named``."""
    with pytest.raises(cls) as exc:
        Deraining(source, device="cpu")
    message = str(exc.value)
    assert "\n" not in message
    assert str(named) in message
    return message


def _image() -> torch.Tensor:
    return torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(1))


# --- round trips ---------------------------------------------------------------------------


def test_save_pretrained_writes_exactly_two_files(model: DANet, saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    save_pretrained(model, saved)  # overwriting leaves no temp file either
    assert sorted(p.name for p in saved.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    config = json.loads((saved / CONFIG_NAME).read_text())
    assert config["sha256"] == sha256_of(saved / WEIGHTS_NAME)
    assert config["architecture"] == "danet"


def test_folder_round_trip_gives_identical_outputs(model: DANet, saved: Path) -> None:
    reference = Deraining(model, device="cpu", tile=None).run(_image())
    loaded = Deraining(saved, device="cpu", tile=None)
    assert loaded.model.cfg == TINY
    assert torch.equal(loaded.run(_image()), reference)


def test_load_file_round_trip(model: DANet, saved: Path) -> None:
    config = json.loads((saved / CONFIG_NAME).read_text())
    loaded = load_file(saved / WEIGHTS_NAME, sha256=config["sha256"], config=config)
    assert _same(loaded, model)
    assert not loaded.training
    x = _image()[None]
    with torch.no_grad():
        assert torch.equal(loaded(x).derained, model(x).derained)


def test_lone_file_carries_its_config(model: DANet, lone: Path) -> None:
    loaded = Deraining(lone, device="cpu")
    assert loaded.model.cfg == TINY
    assert _same(loaded.model, model)


def test_float16_save_loads(model: DANet, tmp_path: Path) -> None:
    save_pretrained(model, tmp_path / "half", dtype=torch.float16)
    with safe_open(str(tmp_path / "half" / WEIGHTS_NAME), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118
    loaded = Deraining(tmp_path / "half", device="cpu").model
    for name, value in _weights(model).items():
        assert torch.equal(_weights(loaded)[name], value.half().float())


# --- altered or malformed files ------------------------------------------------------------


@pytest.mark.parametrize("with_digest", [True, False])
def test_truncated_file_is_refused(saved: Path, lone: Path, with_digest: bool) -> None:
    path = saved / WEIGHTS_NAME if with_digest else lone
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = _refused(saved if with_digest else path, path)
    assert ("sha256" if with_digest else "not a valid safetensors") in message


@pytest.mark.parametrize("where", ["data start", "data middle", "last byte"])
def test_data_flip_caught_by_recorded_sha256(saved: Path, where: str) -> None:
    path = saved / WEIGHTS_NAME
    start, end = 8 + _header_size(path), path.stat().st_size
    _flip(
        path, {"data start": start, "data middle": (start + end) // 2, "last byte": end - 1}[where]
    )
    assert "sha256" in _refused(saved, path)


def test_data_flip_without_digest_is_not_detectable(model: DANet, lone: Path) -> None:
    # Documents the limit: the lowest mantissa bit of one float changes, the value stays finite,
    # the structure is intact, so nothing can tell. Only a recorded sha256 would.
    _flip(lone, 8 + _header_size(lone))
    loaded = Deraining(lone, device="cpu").model
    differing = [k for k, v in _weights(model).items() if not torch.equal(_weights(loaded)[k], v)]
    assert len(differing) == 1


@pytest.mark.parametrize(
    "where", ["length prefix", "length high byte", "json start", "json middle"]
)
def test_header_flip_without_digest_is_refused(lone: Path, where: str) -> None:
    size = _header_size(lone)
    _flip(
        lone, {"length prefix": 0, "length high byte": 7, "json start": 8}.get(where, 8 + size // 2)
    )
    assert "not a valid safetensors" in _refused(lone, lone)


def _write_tensors(lone: Path, edit: str) -> None:
    with safe_open(str(lone), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    first = sorted(tensors)[0]
    if edit == "missing":
        del tensors[first]
    elif edit == "extra":
        tensors["head.unexpected.weight"] = torch.zeros(3)
    elif edit == "misshaped":
        tensors[first] = torch.zeros(*tensors[first].shape, 2)
    elif edit == "non-finite":
        tensors[first] = torch.full_like(tensors[first], float("nan"))
    elif edit == "integer":
        tensors[first] = torch.zeros_like(tensors[first], dtype=torch.int32)
    save_file(tensors, str(lone), metadata=metadata)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("missing", "1 missing"),
        ("extra", "1 unexpected (first: head.unexpected.weight)"),
        ("misshaped", "has shape"),
        ("non-finite", "not finite"),
        ("integer", "not finite floating point"),
    ],
)
def test_tensors_not_fitting_the_architecture_are_refused(
    lone: Path, edit: str, expected: str
) -> None:
    _write_tensors(lone, edit)
    assert expected in _refused(lone, lone)


def test_file_without_config_is_refused(lone: Path) -> None:
    with safe_open(str(lone), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(lone))
    assert "no architecture config" in _refused(lone, lone)


def test_pickle_renamed_safetensors_is_refused(model: DANet, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    torch.save(model.state_dict(), path)
    assert "not a valid safetensors" in _refused(path, path)
    with pytest.raises(WeightsError):
        load_file(path)


def test_wrong_sha256_is_refused_before_parsing(lone: Path) -> None:
    with pytest.raises(WeightsError, match="sha256"):
        load_file(lone, sha256="0" * 64)


def test_custom_variant_loads_from_its_config(model: DANet, tmp_path: Path) -> None:
    # The architecture config is enough: a name outside the registry is only a label.
    save_pretrained(model, tmp_path / "mine", variant="my-variant")
    assert json.loads((tmp_path / "mine" / CONFIG_NAME).read_text())["variant"] == "my-variant"
    assert _same(load_file(tmp_path / "mine" / WEIGHTS_NAME), model)
    assert _same(resolve_model(tmp_path / "mine")[0], model)


def test_config_with_the_old_size_multiple_field_still_loads(saved: Path) -> None:
    config = json.loads((saved / CONFIG_NAME).read_text())
    config["config"]["size_multiple"] = DANet.size_multiple  # written before it left the config
    (saved / CONFIG_NAME).write_text(json.dumps(config))
    assert resolve_model(saved)[0].cfg == TINY
    config["config"]["size_multiple"] = 8
    (saved / CONFIG_NAME).write_text(json.dumps(config))
    assert "size_multiple 8" in _refused(saved, saved / WEIGHTS_NAME)


def test_save_pretrained_leaves_the_model_as_it_was(model: DANet, tmp_path: Path) -> None:
    model = model.train().to(memory_format=torch.channels_last)
    before = {k: (v.dtype, v.device, v.stride()) for k, v in model.state_dict().items()}
    save_pretrained(model, tmp_path / "a", dtype=torch.float16)
    Deraining(model, device="cpu").save_pretrained(tmp_path / "b")
    assert model.training
    assert {k: (v.dtype, v.device, v.stride()) for k, v in model.state_dict().items()} == before
    assert load_file(tmp_path / "b" / WEIGHTS_NAME).cfg == model.cfg


def test_unreadable_config_is_refused(saved: Path) -> None:
    (saved / CONFIG_NAME).write_text("{not json")
    assert "unreadable config" in _refused(saved, saved / CONFIG_NAME)


# --- model sources ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("danet", "registry", "danet"),
        ("danet-plus", "registry", "danet-plus"),
        ("hf-hub:owner/repo", "hub", "owner/repo"),
        ("./danet", "path", "danet"),
        ("models/danet", "path", "models/danet"),
        ("/abs/folder", "path", "/abs/folder"),
        ("mine.safetensors", "path", "mine.safetensors"),
        ("local-dir:danet", "path", "danet"),
        ("local-dir:folder", "path", "folder"),
    ],
)
def test_source_grammar(text: str, kind: str, value: str) -> None:
    parsed = parse_source(text)
    assert (parsed.kind, parsed.value) == (kind, value)


def test_source_grammar_hub_revision_and_home() -> None:
    assert parse_source("hf-hub:o/r@v2").revision == "v2"
    assert parse_source("~/m").value == str(Path.home() / "m")
    assert parse_source(Path("danet")).kind == "path"  # a Path object is always a path


def test_registry_name_is_never_a_folder(
    model: DANet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    save_pretrained(model, "danet")  # a folder named like a registry entry
    assert Deraining("./danet").model.cfg == TINY
    assert Deraining("local-dir:danet").model.cfg == TINY
    if get_model_info("danet").weights.sha256 is not None:
        assert Deraining("danet").source == "danet (shipped weights)"


def test_bare_word_that_is_not_a_name_is_refused(
    model: DANet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    save_pretrained(model, "mymodel")  # exists, but a bare word is ambiguous
    message = _refused("mymodel", "mymodel", ModelNotFoundError)
    assert "./mymodel" in message and "local-dir:mymodel" in message


def test_missing_path_is_refused() -> None:
    assert "no such file or folder" in _refused("./nope", "nope", ModelNotFoundError)


# --- registry names --------------------------------------------------------------------------


def test_unknown_model_name_lists_known_names() -> None:
    message = _refused("danet-ultra", "danet-ultra", ModelNotFoundError)
    assert all(name in message for name in list_models())


@pytest.mark.parametrize("name", list_models())
def test_unshipped_weights_say_how_to_load_a_path(name: str) -> None:
    if get_model_info(name).weights.sha256 is not None:
        pytest.skip(f"weights for {name} are shipped")
    message = _refused(name, name, WeightsNotAvailableError)
    assert "Deraining('path/to/model.safetensors')" in message


@pytest.mark.parametrize("name", list_models())
def test_shipped_weights_match_recorded_sha256(name: str) -> None:
    info = get_model_info(name).weights
    path = shipped_weights_dir() / info.filename
    if info.sha256 is None or not path.is_file():
        pytest.skip(f"no shipped weights for {name}")
    assert sha256_of(path) == info.sha256
