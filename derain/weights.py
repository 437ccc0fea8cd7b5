"""Weights: the public face of the file format (:mod:`derain.models.weight_files`), the model
sources (:mod:`derain.models.sources`) and the Hub (:mod:`derain.models.hub`).

A saved model is ``model.safetensors`` plus ``config.json`` in one folder (the layout the
Hugging Face Hub path loads). The architecture also travels inside the safetensors header, so
a lone ``.safetensors`` file describes itself. Nothing here ever unpickles.
"""

from __future__ import annotations

from .models.sources import (
    HUB_PREFIX,
    LOCAL_PREFIX,
    MODEL_FILE_SUFFIXES,
    ModelSource,
    create_model,
    load_shipped,
    parse_source,
    resolve_model,
)
from .models.weight_files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    copy_strict,
    load_file,
    save_pretrained,
    sha256_of,
    shipped_weights_dir,
    tensors_sha256,
)

__all__ = [
    "CONFIG_NAME",
    "HUB_PREFIX",
    "LOCAL_PREFIX",
    "MODEL_FILE_SUFFIXES",
    "WEIGHTS_NAME",
    "ModelSource",
    "copy_strict",
    "create_model",
    "load_file",
    "load_shipped",
    "parse_source",
    "resolve_model",
    "save_pretrained",
    "sha256_of",
    "shipped_weights_dir",
    "tensors_sha256",
]
