"""derain: remove rain from photos with DANet (Jiang et al., IJCAI 2022).

Example:
    >>> from derain import Deraining
    >>> clean = Deraining("danet").run("rainy.jpg")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _moved
from ._lazy import lazy_names
from ._version import __version__
from .errors import (
    DerainError,
    DerainWarning,
    ImageError,
    ModelNotFoundError,
    OutputError,
    WeightsError,
    WeightsNotAvailableError,
)

# The rest imports torch, so it is loaded on first use: `derain --help` and `--version` stay
# fast, and `import derain` costs nothing until a model is built.
_LAZY = {
    "DANet": "models",
    "DANetConfig": "models",
    "DANetOutput": "models",
    "DerainResult": "inference",
    "Deraining": "inference",
    "create_model": "weights",
    "export_onnx": "engines.onnx",
    "get_model_info": "models",
    "list_models": "models",
    "load_file": "weights",
    "save_pretrained": "weights",
}

if TYPE_CHECKING:
    from .engines.onnx import export_onnx
    from .inference import Deraining, DerainResult
    from .models import DANet, DANetConfig, DANetOutput, get_model_info, list_models
    from .weights import create_model, load_file, save_pretrained

_moved.install()


__all__ = [
    "DANet",
    "DANetConfig",
    "DANetOutput",
    "DerainError",
    "DerainResult",
    "DerainWarning",
    "Deraining",
    "ImageError",
    "ModelNotFoundError",
    "OutputError",
    "WeightsError",
    "WeightsNotAvailableError",
    "__version__",
    "create_model",
    "export_onnx",
    "get_model_info",
    "list_models",
    "load_file",
    "save_pretrained",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
