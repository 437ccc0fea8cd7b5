"""Where a model comes from: registry names, local files and folders, the Hub.

:func:`parse_source` is the one grammar of ``Deraining(model)``, ``--model`` and ``--init``;
:func:`resolve_model` loads what a source names (files through :mod:`derain.models.weight_files`,
the Hub through :mod:`derain.models.hub`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ModelNotFoundError, WeightsError, WeightsNotAvailableError
from .danet import DANet
from .hub import load_from_hub
from .registry import ModelInfo, get_model_info, list_models
from .weight_files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    check_sha256,
    config_beside,
    load_file,
    read_config,
    shipped_weights_dir,
)

__all__ = [
    "HUB_PREFIX",
    "LOCAL_PREFIX",
    "MODEL_FILE_SUFFIXES",
    "ModelSource",
    "create_model",
    "load_directory",
    "load_shipped",
    "parse_source",
    "resolve_model",
]

HUB_PREFIX = "hf-hub:"


LOCAL_PREFIX = "local-dir:"


#: Suffixes that make a source text a path to a model file (weights, or an ONNX export).
MODEL_FILE_SUFFIXES = (".safetensors", ".onnx")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, as :func:`parse_source` reads it.

    Attributes:
        kind: ``"registry"``, ``"hub"`` or ``"path"``.
        value: the registry name, the ``owner/repo`` id, or the path (``~`` expanded).
        revision: the Hub revision after ``@``, if any.
    """

    kind: Literal["registry", "hub", "path"]
    value: str
    revision: str | None = None


def _looks_like_path(text: str) -> bool:
    seps = {sep for sep in ("/", os.sep, os.altsep) if sep}
    return (
        any(sep in text for sep in seps)
        or text.startswith((".", "~"))
        or text.endswith(MODEL_FILE_SUFFIXES)
    )


def parse_source(source: str | os.PathLike[str]) -> ModelSource:
    """Read a model source: the one grammar of ``Deraining(model)``, ``--model`` and ``--init``.

    - a registry name (:func:`~derain.models.list_models`) is always that entry, even where a
      folder of the same name exists;
    - ``hf-hub:owner/repo`` or ``hf-hub:owner/repo@revision`` is a Hugging Face Hub repository;
    - a path is a :class:`os.PathLike` object, or text with a path separator, a leading ``.``
      or ``~``, or a ``.safetensors`` or ``.onnx`` suffix, or text written ``local-dir:PATH``
      (an ``.onnx`` path runs with ONNX Runtime, see :mod:`derain.engines.onnx`);
    - anything else is refused, with a hint to write ``./NAME`` for a local folder.

    Raises:
        ModelNotFoundError: an ambiguous or malformed source, in one line.

    Example:
        >>> parse_source("danet").kind, parse_source("./danet").kind
        ('registry', 'path')
        >>> parse_source("hf-hub:owner/repo@v1")
        ModelSource(kind='hub', value='owner/repo', revision='v1')
    """
    if not isinstance(source, str):
        return ModelSource("path", str(Path(os.fspath(source)).expanduser()))
    if source.startswith(HUB_PREFIX):
        repo_id, _, revision = source.removeprefix(HUB_PREFIX).partition("@")
        if repo_id.count("/") != 1:
            raise ModelNotFoundError.about(
                source, "expected 'hf-hub:owner/repo' or 'hf-hub:owner/repo@rev'"
            )
        return ModelSource("hub", repo_id, revision or None)
    if source.startswith(LOCAL_PREFIX):
        return ModelSource("path", str(Path(source.removeprefix(LOCAL_PREFIX)).expanduser()))
    if source in list_models():
        return ModelSource("registry", source)
    if _looks_like_path(source):
        return ModelSource("path", str(Path(source).expanduser()))
    known = ", ".join(list_models())
    raise ModelNotFoundError.about(
        source,
        f"not a known model; known models: {known}. For a local folder or file "
        f"write ./{source} or {LOCAL_PREFIX}{source}; for the Hub, {HUB_PREFIX}owner/repo",
    )


def resolve_model(source: str | os.PathLike[str], sha256: str | None = None) -> tuple[DANet, str]:
    """Load the model a source names (the grammar: :func:`parse_source`).

    Args:
        source: the model.
        sha256: expected digest of the weights file, checked on top of any digest recorded
            in the package (shipped weights) or beside the file (``config.json``).

    Returns:
        The model in eval mode and a short human-readable description of where it came from.
    """
    parsed = parse_source(source)
    if parsed.kind == "registry":
        info = get_model_info(parsed.value)
        check_sha256(shipped_file(info), sha256)
        return load_shipped(info), f"{parsed.value} (shipped weights)"
    if parsed.kind == "hub":
        net = load_from_hub(parsed.value, parsed.revision, os.fspath(source), sha256)
        return net, os.fspath(source)
    path = Path(parsed.value)
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file():
            check_sha256(path / WEIGHTS_NAME, sha256)
        return load_directory(path), str(path)
    if path.is_file():
        check_sha256(path, sha256)
        sidecar = config_beside(path)
        if sidecar is not None:
            config = read_config(sidecar)
            return load_file(path, sha256=config.get("sha256"), config=config), str(path)
        return load_file(path), str(path)
    raise ModelNotFoundError.about(path, "no such file or folder")


def shipped_file(info: ModelInfo) -> Path:
    """Where the installed package keeps a registry entry's weights file."""
    return shipped_weights_dir() / info.weights.filename


def load_shipped(info: ModelInfo) -> DANet:
    """The pretrained weights of a registry entry, from inside the installed package."""
    path = shipped_file(info)
    if info.weights.sha256 is None or not path.is_file():
        raise WeightsNotAvailableError(
            f"no pretrained weights for {info.name!r} are shipped in this version of derain; "
            "load your own with Deraining('path/to/model.safetensors') or "
            "Deraining('hf-hub:owner/repo')"
        )
    model = load_file(path, sha256=info.weights.sha256)
    if model.cfg != info.config:
        raise WeightsError.about(path, f"holds {model.cfg}, not the registry's {info.name!r}")
    return model


def create_model(name: str, pretrained: bool = False) -> DANet:
    """Build a registered variant, optionally with its shipped pretrained weights.

    Args:
        name: a name from :func:`~derain.models.list_models`.
        pretrained: load the weights shipped inside the package (no network access).

    Example:
        >>> net = create_model("danet")
        >>> sum(p.numel() for p in net.parameters())
        1547066
    """
    info = get_model_info(name)
    return load_shipped(info) if pretrained else DANet(info.config)


def load_directory(directory: Path) -> DANet:
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise WeightsNotAvailableError.about(directory, f"no {WEIGHTS_NAME} in this folder")
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        return load_file(weights)
    config = read_config(config_path)
    return load_file(weights, sha256=config.get("sha256"), config=config)
