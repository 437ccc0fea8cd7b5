"""The engine interface: the registry picks the engine, and any ``Engine`` runs behind
``Deraining`` (tiles, layers, the run record, the out-of-memory retry) without a change there."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor

from derain import DANet, DANetConfig, DerainError, Deraining
from derain.engines import ENGINES, Engine, LoadOptions, engine_classes, load_engine
from derain.engines.onnx import OnnxEngine
from derain.engines.torch import TorchEngine
from derain.record import RunRecord

TINY = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)


class _Dimmer(Engine):
    """A stand-in runtime: halves the brightness; "runs out of memory" on tiles over a size."""

    runtime: ClassVar[str] = "dimmer"
    supported_dtypes: ClassVar[tuple[torch.dtype, ...]] = (torch.float32,)

    def __init__(self, max_side: int | None = None) -> None:
        self.source, self.device, self.dtype = "dimmer", torch.device("cpu"), torch.float32
        self.config, self.size_multiple = TINY, 16
        self.max_side = max_side
        self.sides: list[int] = []

    @classmethod
    def claims(cls, model: object) -> bool:
        return model == "dimmer"

    @classmethod
    def load(cls, model: object, options: LoadOptions) -> _Dimmer:
        return cls()

    @property
    def weights_sha256(self) -> str:
        return "d" * 64

    def forward(self, x: Tensor, with_layers: bool) -> tuple[Tensor, ...]:
        side = max(x.shape[-2:])
        if self.max_side is not None and side > self.max_side:
            raise MemoryError(f"tile of {side} px")
        self.sides.append(side)
        half = torch.zeros(x.shape[0], 1, x.shape[2] // 2, x.shape[3] // 2)
        return (x * 0.5, half, half + 0.5) if with_layers else (x * 0.5,)

    def with_dtype(self, dtype: torch.dtype) -> _Dimmer:
        self.choose_dtype(dtype)
        return self

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return isinstance(exc, MemoryError)


def test_the_registry_picks_the_engine(tmp_path: Path) -> None:
    assert engine_classes() == [OnnxEngine, TorchEngine]
    assert len(ENGINES) == len(engine_classes())
    assert OnnxEngine.claims(tmp_path / "m.onnx") and not TorchEngine.claims(object())
    assert isinstance(load_engine(DANet(TINY), device="cpu"), TorchEngine)
    with pytest.raises(DerainError, match="model must be"):
        load_engine(object())


def test_any_engine_runs_behind_deraining() -> None:
    engine = _Dimmer()
    deraining = Deraining(engine, tile=None)
    rgb = np.full((20, 30, 3), 200, np.uint8)
    out = deraining.run(rgb, return_layers=True)
    assert out.image.shape == rgb.shape and abs(int(out.image[0, 0, 0]) - 100) <= 1
    assert out.rain.shape == (20, 30) and out.rain.max() == 0
    record = RunRecord.parse(deraining.made_by)
    assert record == RunRecord("dimmer", "d" * 64, "fp32")
    assert deraining.model is None and deraining.engine is engine
    with pytest.raises(DerainError, match="no PyTorch network"):
        deraining.save_pretrained("x")
    with pytest.raises(DerainError, match=r"in fp32 .*; precision fp16 is not supported"):
        Deraining(engine, dtype="fp16")
    with pytest.raises(DerainError, match=r"; precision bf16 is not supported"):
        Deraining(engine, dtype=torch.bfloat16)  # a dtype is named as the option names it


def test_out_of_memory_halves_the_tile_for_any_engine() -> None:
    engine = _Dimmer(max_side=128)
    out = Deraining(engine, tile=512, overlap=8).run(np.zeros((300, 300, 3), np.uint8))
    assert out.shape == (300, 300, 3)
    assert engine.sides and max(engine.sides) <= 128  # 512 -> 256 -> 128


def test_other_errors_are_not_retried() -> None:
    class Broken(_Dimmer):
        def forward(self, x: Tensor, with_layers: bool) -> tuple[Tensor, ...]:
            raise RuntimeError("broken runtime")

    with pytest.raises(RuntimeError, match="broken runtime"):
        Deraining(Broken(), tile=64).run(np.zeros((100, 100, 3), np.uint8))
