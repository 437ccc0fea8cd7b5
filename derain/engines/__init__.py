"""Engines: the runtimes a DANet runs on, behind one interface (:class:`Engine`).

:func:`load_engine` asks each engine of :data:`ENGINES` in turn whether it runs a model
source, and loads it with the first that does. A new engine is one module in this folder
(a subclass of :class:`Engine`) and one line in :data:`ENGINES`.
"""

from __future__ import annotations

import importlib

import torch

from ..errors import DerainError
from .base import DtypeRequest, Engine, LoadOptions, ModelArgument

__all__ = ["ENGINES", "DtypeRequest", "Engine", "LoadOptions", "engine_classes", "load_engine"]

#: ``module:class`` of every engine, asked in this order; imported only when a model loads.
#: PyTorch comes last: it takes every source text the others leave.
ENGINES = (
    "derain.engines.onnx:OnnxEngine",
    "derain.engines.torch:TorchEngine",
)


def engine_classes() -> list[type[Engine]]:
    """The engine classes of :data:`ENGINES`, in order."""
    classes = []
    for spec in ENGINES:
        module, _, name = spec.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


def load_engine(
    model: ModelArgument | Engine,
    *,
    device: str | torch.device = "auto",
    dtype: DtypeRequest = "auto",
    sha256: str | None = None,
) -> Engine:
    """Load ``model`` with the first engine that claims it (an :class:`Engine` is kept).

    Raises:
        DerainError: no engine runs ``model``, or it cannot load.
    """
    if isinstance(model, Engine):
        if sha256 is not None:
            raise DerainError("sha256 checks a weights file; a loaded engine has none")
        return model if dtype in ("auto", None) else model.with_dtype(model.choose_dtype(dtype))
    for cls in engine_classes():
        if cls.claims(model):
            return cls.load(model, LoadOptions(device, dtype, sha256))
    raise DerainError(
        "model must be a model name, 'hf-hub:owner/repo', a path, a DANet, an OnnxModel or "
        f"an Engine, got {type(model).__name__}"
    )
