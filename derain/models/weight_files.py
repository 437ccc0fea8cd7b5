"""The weights file format: safetensors only, every file checked before use.

A saved model is ``model.safetensors`` plus ``config.json`` in one folder (the layout the
Hugging Face Hub path loads). The architecture also travels inside the safetensors header, so
a lone ``.safetensors`` file describes itself. Nothing here ever unpickles. Where weights come
from (names, paths, the Hub) is :mod:`derain.models.sources`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic import atomic_write
from ..errors import OutputError, WeightsError, WeightsNotAvailableError, first_line
from .danet import DANet, DANetConfig

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "check_sha256",
    "config_beside",
    "copy_strict",
    "load_file",
    "read_config",
    "save_pretrained",
    "sha256_of",
    "shipped_weights_dir",
    "tensors_sha256",
    "write_safetensors",
]

WEIGHTS_NAME = "model.safetensors"


CONFIG_NAME = "config.json"


FORMAT_VERSION = "1"


ARCHITECTURE = "danet"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_sha256(model: torch.nn.Module) -> str:
    """Hex sha256 over a network's tensors (names, shapes and float32 values).

    It identifies weights whatever file, Hub repository or object they came from.
    """
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        value = param.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(value.shape)};".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def shipped_weights_dir() -> Path:
    """The folder of weights inside the installed package (or the checkout's ``weights/``)."""
    package = Path(__file__).resolve().parents[1]  # derain/, installed or checked out
    for candidate in (package / "weights", package.parent / "weights"):
        if candidate.is_dir():
            return candidate
    return package / "weights"


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # named_parameters() lists a shared module (the PReLUs) once, under its first name,
    # which gives each tensor exactly one canonical key.
    return {name: p.detach() for name, p in model.named_parameters()}


def _config_dict(model: DANet, variant: str | None) -> dict[str, Any]:
    return {
        "architecture": ARCHITECTURE,
        "variant": variant,
        "format_version": FORMAT_VERSION,
        "config": dataclasses.asdict(model.cfg),
    }


def save_pretrained(
    model: DANet,
    directory: str | os.PathLike[str],
    variant: str | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``.

    Args:
        model: the network to save; it is not changed (tensors are copied to the CPU).
        directory: target folder, created if needed; this layout can be uploaded to the Hub.
        variant: a name recorded for humans and tools (a registry name or your own); loading
            needs only the architecture config, which is always written.
        dtype: store tensors in this dtype (for example ``torch.float16`` to halve the file).

    Returns:
        Path of the weights file.

    Example:
        >>> path = save_pretrained(DANet(), "my-model", variant="danet")  # doctest: +SKIP
    """
    directory = Path(directory)
    config = _config_dict(model, variant)
    tensors = {
        k: (v.to(dtype) if dtype is not None else v).contiguous().cpu()
        for k, v in _state_dict(model).items()
    }
    metadata = {"format": "pt", "derain": json.dumps(config, sort_keys=True)}
    weights_path = directory / WEIGHTS_NAME
    write_safetensors(weights_path, tensors, metadata)
    _write_config(directory, config, weights_path)
    return weights_path


def write_safetensors(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> Path:
    """Write a safetensors file atomically (complete, or the file before it is kept).

    Raises:
        OutputError: one line naming ``path`` and why it cannot be written (a full disk).
    """
    path = Path(path)
    try:
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    except OSError as exc:
        raise OutputError.about(path, f"cannot write ({exc.strerror or first_line(exc)})") from None
    except SafetensorError as exc:  # the Rust writer's I/O errors: "I/O error: <why> (os error N)"
        reason = first_line(exc).partition("I/O error: ")[2].split(" (os error")[0]
        raise OutputError.about(path, f"cannot write ({reason or first_line(exc)})") from None


def copy_pretrained(
    model: DANet,
    weights_file: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    variant: str | None = None,
) -> Path:
    """:func:`save_pretrained` with the bytes of ``model``'s own weights file, so its sha256
    stays the one recorded elsewhere (safetensors does not write its header in a fixed order,
    so saving the same tensors again can give another digest)."""
    directory = Path(directory)
    weights_path = directory / WEIGHTS_NAME
    atomic_write(weights_path, lambda tmp: shutil.copyfile(weights_file, tmp))
    _write_config(directory, _config_dict(model, variant), weights_path)
    return weights_path


def _write_config(directory: Path, config: dict[str, Any], weights_path: Path) -> None:
    config = {**config, "sha256": sha256_of(weights_path)}
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write(directory / CONFIG_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _config_from(raw: dict[str, Any], source: str) -> DANetConfig:
    if raw.get("architecture") != ARCHITECTURE:
        raise WeightsError.about(source, f"architecture {raw.get('architecture')!r} is not 'danet'")
    variant = raw.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise WeightsError.about(source, f"variant {variant!r} is not a name")
    settings = raw.get("config")
    if not isinstance(settings, dict):
        raise WeightsError.about(source, "malformed architecture config (no 'config' object)")
    settings = dict(settings)
    # Files written before size_multiple became a fact of the architecture still carry it.
    legacy_multiple = settings.pop("size_multiple", DANet.size_multiple)
    if legacy_multiple != DANet.size_multiple:
        raise WeightsError.about(
            source, f"size_multiple {legacy_multiple!r} does not fit DANet ({DANet.size_multiple})"
        )
    try:
        return DANetConfig(**settings)
    except TypeError as exc:
        raise WeightsError.about(source, f"malformed architecture config ({exc})") from None


def read_config(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError.about(path, f"unreadable config ({exc})") from None
    if not isinstance(raw, dict):
        raise WeightsError.about(path, "config is not a JSON object")
    return raw


def load_file(
    path: str | os.PathLike[str],
    sha256: str | None = None,
    config: dict[str, Any] | None = None,
) -> DANet:
    """Build a DANet from a safetensors file, refusing anything that does not fit exactly.

    Args:
        path: the ``.safetensors`` file.
        sha256: expected digest; a mismatch is refused before the file is parsed.
        config: architecture description; by default read from the file's own header.

    Raises:
        WeightsError: corrupt, altered, non-safetensors, or mismatched tensors.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise WeightsNotAvailableError.about(source, "weights file not found")
    if sha256 is not None and sha256_of(path) != sha256:
        raise WeightsError.about(
            source, "sha256 does not match the recorded digest; the file is corrupt or was altered"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError.about(
            source, f"not a valid safetensors file ({first_line(exc)})"
        ) from None
    if config is None:
        if "derain" not in header:
            raise WeightsError.about(source, "no architecture config in the file or beside it")
        try:
            config = json.loads(header["derain"])
        except json.JSONDecodeError:
            raise WeightsError.about(source, "malformed architecture config in header") from None
    model = DANet(_config_from(config, source))
    copy_strict(model, tensors, source)
    return model.eval()


def copy_strict(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``tensors`` into ``model``'s parameters, refusing anything that does not fit.

    Every parameter must be present under its canonical name (shared modules once), with its
    shape, finite and floating point; no tensor may be left over. Nothing is copied unless
    everything fits. Used for weights files and for training checkpoints alike.

    Raises:
        WeightsError: one line naming ``source`` and the first mismatch.
    """
    expected = _state_dict(model)
    missing = sorted(expected.keys() - tensors.keys())
    extra = sorted(tensors.keys() - expected.keys())
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (first: {extra[0]})")
        raise WeightsError.about(
            source, f"tensors do not match the architecture: {'; '.join(parts)}"
        )
    for name, target in expected.items():
        value = tensors[name]
        if value.shape != target.shape:
            raise WeightsError.about(
                source,
                f"tensor {name} has shape {tuple(value.shape)}, expected {tuple(target.shape)}",
            )
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise WeightsError.about(source, f"tensor {name} is not finite floating point")
    with torch.no_grad():
        for name, target in expected.items():
            target.copy_(tensors[name])


def config_beside(path: Path) -> Path | None:
    """The config recorded beside a weights file: ``NAME.json``, or the ``config.json`` of
    the folder :func:`save_pretrained` wrote when the file is its ``model.safetensors``."""
    for candidate in (path.with_suffix(".json"), path.parent / CONFIG_NAME):
        if candidate.is_file() and (candidate.name != CONFIG_NAME or path.name == WEIGHTS_NAME):
            return candidate
    return None


def check_sha256(path: Path, expected: str | None) -> None:
    """Refuse ``path`` unless its sha256 is ``expected`` (when one is given)."""
    if expected is None:
        return
    want = expected.strip().lower()
    if len(want) != 64 or any(c not in "0123456789abcdef" for c in want):
        raise WeightsError(f"sha256 must be 64 hex digits, got {expected!r}")
    if sha256_of(path) != want:
        raise WeightsError.about(
            path,
            f"sha256 does not match the expected {want[:12]}…; "
            "the file is corrupt, altered or another model",
        )
