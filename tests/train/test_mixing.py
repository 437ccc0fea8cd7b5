"""derain.train.mixing and tools/mix_weights.py: weight-space lines between two networks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY
from places import ROOT

from derain import DANet, DANetConfig
from derain.errors import WeightsError
from derain.train.mixing import mix_models
from derain.weights import resolve_model, save_pretrained


def _pair() -> tuple[DANet, DANet]:
    torch.manual_seed(0)
    return DANet(TINY).eval(), DANet(TINY).eval()


@pytest.mark.parametrize("t", [0.0, 0.5, 1.0, 1.5, -0.5])
def test_every_weight_lies_on_the_line(t: float) -> None:
    start, end = _pair()
    mixed = mix_models(start, end, t)
    a, b, m = start.state_dict(), end.state_dict(), mixed.state_dict()
    assert m.keys() == b.keys()
    for key in b:
        torch.testing.assert_close(m[key], a[key] + t * (b[key] - a[key]), rtol=0, atol=1e-6)


def test_the_networks_handed_in_are_left_as_they_were() -> None:
    start, end = _pair()
    before = [{k: v.clone() for k, v in n.state_dict().items()} for n in (start, end)]
    mixed = mix_models(start, end, 0.5)
    for net, saved in zip((start, end), before, strict=True):
        for key, value in net.state_dict().items():
            assert torch.equal(value, saved[key])
    assert mixed is not end and not mixed.training


def test_the_mix_of_a_network_with_itself_runs_as_it_does() -> None:
    start, _ = _pair()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(mix_models(start, start, 1.5)(x)[0], start(x)[0])


def test_two_architectures_or_a_bad_t_are_refused() -> None:
    start, end = _pair()
    with pytest.raises(WeightsError, match="two architectures"):
        mix_models(start, DANet(DANetConfig(channels=8, orb_blocks=2, stage_blocks=1)), 0.5)
    with pytest.raises(ValueError, match="finite"):
        mix_models(start, end, float("nan"))


def test_the_tool_writes_a_folder_that_loads_with_its_digest(tmp_path: Path) -> None:
    start, end = _pair()
    save_pretrained(start, tmp_path / "a", variant="tiny")
    save_pretrained(end, tmp_path / "b", variant="tiny")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    tool = [sys.executable, str(ROOT / "tools" / "mix_weights.py")]
    args = [str(tmp_path / "a"), str(tmp_path / "b"), "0.5", str(tmp_path / "m")]
    done = subprocess.run(
        [*tool, *args, "--variant", "tiny"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["variant"] == "tiny" and len(config["sha256"]) == 64
    loaded, _ = resolve_model(tmp_path / "m")
    expected = mix_models(start, end, 0.5).state_dict()
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, expected[key])
    missing = [str(tmp_path / "a"), str(tmp_path / "none"), "0.5", str(tmp_path / "n")]
    failed = subprocess.run([*tool, *missing], capture_output=True, text=True, env=env)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.startswith("mix_weights: error: ") and "none" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and not (tmp_path / "n").exists()
