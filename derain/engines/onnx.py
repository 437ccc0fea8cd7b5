"""The ONNX Runtime engine: a file exported by :func:`derain.export_onnx`, in float32."""

from __future__ import annotations

import os
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import DerainError
from ..models.danet import DANetConfig
from ..onnx_model import OnnxModel, onnx_path
from .base import DtypeRequest, Engine, LoadOptions, ModelSource

__all__ = ["OnnxEngine"]


class OnnxEngine(Engine):
    """An exported DANet run by ONNX Runtime (sources: ``*.onnx`` paths, an :class:`OnnxModel`).

    Args:
        model: the loaded file.
        dtype: ``auto`` or float32 (the exported graph computes in float32).
    """

    runtime: ClassVar[str] = "onnxruntime"
    supported_dtypes: ClassVar[tuple[torch.dtype, ...]] = (torch.float32,)

    def __init__(self, model: OnnxModel, dtype: DtypeRequest = "auto") -> None:
        #: The ONNX Runtime session and the file's metadata.
        self.onnx_model = model
        self.source = f"{model.path} (ONNX Runtime)"
        self.device = model.device
        self.dtype = self.choose_dtype(dtype)
        self.config: DANetConfig = model.config
        self.size_multiple = model.size_multiple

    @classmethod
    def claims(cls, model: ModelSource) -> bool:
        """An :class:`OnnxModel`, or a path whose name ends in ``.onnx``."""
        if isinstance(model, OnnxModel):
            return True
        return isinstance(model, (str, os.PathLike)) and onnx_path(model) is not None

    @classmethod
    def load(cls, model: ModelSource, options: LoadOptions) -> OnnxEngine:
        """See :meth:`Engine.load`."""
        if isinstance(model, OnnxModel):
            if options.sha256 is not None:
                raise DerainError("sha256 checks a file; give it to OnnxModel(path, sha256=)")
            return cls(model, options.dtype)
        path = onnx_path(model) if isinstance(model, (str, os.PathLike)) else None
        if path is None:
            raise DerainError(f"{model!r}: not an .onnx file")
        loaded = OnnxModel(path, sha256=options.sha256, device=options.device)
        return cls(loaded, options.dtype)

    @property
    def weights_sha256(self) -> str:
        """The digest of the weights the file was exported from."""
        return self.onnx_model.weights_sha256

    def forward(self, x: Tensor, with_layers: bool) -> tuple[Tensor, ...]:
        outs = self.onnx_model.run(x.detach().cpu().numpy(), with_layers)
        return tuple(torch.from_numpy(o).to(self.device) for o in outs)

    def with_dtype(self, dtype: torch.dtype) -> OnnxEngine:
        self.choose_dtype(dtype)  # refuses anything but float32
        return self
