"""The networks: published sizes, named outputs, registry behaviour."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from derain import DANet, DANetConfig, DANetOutput, ModelNotFoundError, create_model, list_models
from derain.models.danet import quadrant_stack

# Parameter counts of the paper (used in the forward pass) and MACs at 512×512 from the spec.
PUBLISHED = {"danet": (1_547_066, 48.8e9), "danet-plus": (2_943_138, 130.5e9)}


def test_registry_lists_both_networks() -> None:
    assert list_models() == ["danet", "danet-plus"]


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_parameter_count_matches_paper(name: str) -> None:
    net = create_model(name)
    assert sum(p.numel() for p in net.parameters()) == PUBLISHED[name][0]
    prelus = [m for m in net.modules() if isinstance(m, torch.nn.PReLU)]
    assert sum(p.numel() for p in {id(m): m for m in prelus}.values() for p in p.parameters()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PUBLISHED))
def test_macs_at_512_within_one_percent(name: str) -> None:
    net = create_model(name).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 3, 512, 512))
    macs = counter.get_total_flops() / 2  # the counter reports 2 FLOPs per multiply-accumulate
    assert macs == pytest.approx(PUBLISHED[name][1], rel=0.01)


def test_every_parameter_is_used_in_forward() -> None:
    net = DANet(DANetConfig(channels=8, orb_blocks=1, stage_blocks=1, share_fusion_dsc=False))
    out = net(torch.rand(1, 3, 32, 32))
    sum(t.sum() for t in out).backward()
    unused = [n for n, p in net.named_parameters() if p.grad is None]
    assert unused == []


def test_forward_returns_named_outputs() -> None:
    cfg = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)
    with torch.no_grad():
        out = DANet(cfg)(torch.rand(2, 3, 32, 48))
    assert isinstance(out, DANetOutput)
    assert out.derained.shape == (2, 3, 32, 48)
    assert out.derained_low.shape == out.rain.shape == (2, 3, 16, 24)
    assert out.mask.shape == (2, 8, 16, 24)
    assert float(out.mask.min()) >= 0 and float(out.mask.max()) <= 1


def test_input_size_must_be_a_multiple_of_16() -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        DANet(DANetConfig(channels=8, orb_blocks=1, stage_blocks=1))(torch.rand(1, 3, 30, 32))


def test_quadrant_stack_order() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4).expand(1, 3, 4, 4)
    stacked = quadrant_stack(x)
    assert stacked.shape == (1, 12, 2, 2)
    # top-left, top-right, bottom-left, bottom-right, three channels each
    assert [float(stacked[0, 3 * q, 0, 0]) for q in range(4)] == [0.0, 2.0, 8.0, 10.0]


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ModelNotFoundError, match=r"danet, danet-plus"):
        create_model("danet-xl")
