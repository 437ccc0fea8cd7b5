"""The ONNX Runtime engine: a file exported by :func:`derain.export_onnx`, in float32."""

from __future__ import annotations

import os
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import DerainError
from ..models.danet import DANetConfig
from ..onnx_model import OnnxModel, onnx_path
from .base import DtypeRequest, Engine, ModelSource

__all__ = ["OnnxEngine"]


class OnnxEngine(Engine):
    """An exported DANet run by ONNX Runtime (sources: ``*.onnx`` paths, an :class:`OnnxModel`).

    Args:
        model: the loaded file.
        dtype: ``auto`` or float32 (the exported graph computes in float32).
    """

    runtime: ClassVar[str] = "onnxruntime"

    def __init__(self, model: OnnxModel, dtype: DtypeRequest = "auto") -> None:
        #: The ONNX Runtime session and the file's metadata.
        self.onnx_model = model
        self.source = f"{model.path} (ONNX Runtime)"
        self.device = model.device
        self.dtype = self.choose_dtype(dtype)

    @classmethod
    def claims(cls, model: ModelSource) -> bool:
        """An :class:`OnnxModel`, or a path whose name ends in ``.onnx``."""
        if isinstance(model, OnnxModel):
            return True
        return isinstance(model, (str, os.PathLike)) and onnx_path(model) is not None

    @classmethod
    def load(
        cls,
        model: ModelSource,
        *,
        device: str | torch.device = "auto",
        dtype: DtypeRequest = "auto",
        sha256: str | None = None,
    ) -> OnnxEngine:
        """See :meth:`Engine.load`."""
        if isinstance(model, OnnxModel):
            if sha256 is not None:
                raise DerainError("sha256 checks a file; give it to OnnxModel(path, sha256=)")
            return cls(model, dtype)
        path = onnx_path(model) if isinstance(model, (str, os.PathLike)) else None
        if path is None:
            raise DerainError(f"{model!r}: not an .onnx file")
        return cls(OnnxModel(path, sha256=sha256, device=device), dtype)

    @property
    def config(self) -> DANetConfig:
        return self.onnx_model.config

    @property
    def size_multiple(self) -> int:
        return self.onnx_model.size_multiple

    @property
    def weights_sha256(self) -> str:
        """The digest of the weights the file was exported from."""
        return self.onnx_model.weights_sha256

    @property
    def supported_dtypes(self) -> tuple[torch.dtype, ...]:
        return (torch.float32,)

    def forward(self, x: Tensor, with_layers: bool) -> tuple[Tensor, ...]:
        outs = self.onnx_model.run(x.detach().cpu().numpy(), with_layers)
        return tuple(torch.from_numpy(o).to(self.device) for o in outs)

    def with_dtype(self, dtype: torch.dtype) -> OnnxEngine:
        self.choose_dtype(dtype)  # refuses anything but float32
        return self
