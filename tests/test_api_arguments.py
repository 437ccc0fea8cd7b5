"""The Python API's arguments: wrong types, tile text as the CLI takes it, weights digests."""

from __future__ import annotations

from pathlib import Path

import pytest
from clitools import cli, make_image, one_error_line

from derain import Deraining

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


# --- 11-13: the Python API ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [
        ((None,), {}, "model"),
        ((123,), {}, "model"),
        ((), {"overlap": 2.5}, "overlap"),
        ((), {"overlap": "32"}, "overlap"),
        ((), {"tile": 2.5}, "tile"),
        ((), {"tile": True}, "tile"),
        ((), {"device": 3}, "device"),
    ],
)
def test_wrong_argument_types_are_derain_errors(
    model_dir: Path, args: tuple, kwargs: dict, needle: str
) -> None:
    from derain import DerainError

    call_args = args or (model_dir,)
    with pytest.raises(DerainError, match=needle) as info:
        Deraining(*call_args, device=kwargs.pop("device", "cpu"), **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "tile"),
    [("512", 512), (" 256 ", 256), ("none", None), ("None", None), ("auto", "auto")],
)
def test_api_takes_tile_text_as_the_cli_does(model_dir: Path, text: str, tile: object) -> None:
    assert Deraining(model_dir, device="cpu", tile=text).tile == tile


@pytest.mark.parametrize("text", ["32", "big", "-512", ""])
def test_api_and_cli_refuse_the_same_tile_text(model_dir: Path, text: str) -> None:
    from derain import DerainError

    with pytest.raises(DerainError, match="tile") as info:
        Deraining(model_dir, device="cpu", tile=text)
    make_image("a.png")
    result = cli("a.png", "--model", model_dir, "--tile", text)
    assert result.exit_code == 2
    assert str(info.value) in one_error_line(result)  # one parser, one message


def _altered_copy(model_dir: Path, folder: str) -> Path:
    import shutil

    shutil.copytree(model_dir, folder)
    weights = Path(folder) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of the last float: still a valid safetensors file
    weights.write_bytes(bytes(data))
    return weights


def test_altered_weights_loaded_by_file_path_are_refused(model_dir: Path) -> None:
    from derain import WeightsError

    weights = _altered_copy(model_dir, "altered")
    for source in (weights.parent, weights):  # the folder, and the file inside it
        with pytest.raises(WeightsError, match="sha256"):
            Deraining(source, device="cpu")


def test_sha256_argument_checks_a_lone_weights_file(model_dir: Path) -> None:
    import json
    import shutil

    from derain import WeightsError

    recorded = json.loads((model_dir / "config.json").read_text())["sha256"]
    shutil.copy(model_dir / "model.safetensors", "good.safetensors")
    assert Deraining("good.safetensors", device="cpu", sha256=recorded).weights_sha256
    altered = _altered_copy(model_dir, "altered")
    shutil.copy(altered, "bad.safetensors")
    with pytest.raises(WeightsError, match=r"bad\.safetensors: sha256"):
        Deraining("bad.safetensors", device="cpu", sha256=recorded)
    with pytest.raises(WeightsError, match="sha256"):
        Deraining(model_dir, device="cpu", sha256="0" * 64)


def test_save_pretrained_records_the_digest_it_is_checked_against(
    net: Deraining, tmp_path: Path
) -> None:
    import json

    from derain.weights import sha256_of

    weights = net.save_pretrained("saved")
    recorded = json.loads(Path("saved/config.json").read_text())["sha256"]
    assert recorded == sha256_of(weights)
    assert Deraining(weights, device="cpu", sha256=recorded).weights_sha256 == net.weights_sha256
