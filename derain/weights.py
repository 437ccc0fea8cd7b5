"""Reading and writing weights: safetensors only, every file checked before use.

A saved model is ``model.safetensors`` plus ``config.json`` in one folder (the layout the
Hugging Face Hub path loads). The architecture also travels inside the safetensors header, so
a lone ``.safetensors`` file describes itself. Nothing here ever unpickles.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import atomic_write
from .errors import ModelNotFoundError, WeightsError, WeightsNotAvailableError, first_line
from .models.danet import DANet, DANetConfig
from .models.registry import ModelInfo, get_model_info, list_models

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

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
HUB_PREFIX = "hf-hub:"
LOCAL_PREFIX = "local-dir:"
FORMAT_VERSION = "1"
#: Suffixes that make a source text a path to a model file (weights, or an ONNX export).
MODEL_FILE_SUFFIXES = (".safetensors", ".onnx")
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
    here = Path(__file__).resolve().parent
    for candidate in (here / "weights", here.parent / "weights"):
        if candidate.is_dir():
            return candidate
    return here / "weights"


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
    atomic_write(weights_path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    config["sha256"] = sha256_of(weights_path)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write(directory / CONFIG_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return weights_path


def _config_from(raw: dict[str, Any], source: str) -> DANetConfig:
    if raw.get("architecture") != ARCHITECTURE:
        raise WeightsError(f"{source}: architecture {raw.get('architecture')!r} is not 'danet'")
    variant = raw.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise WeightsError(f"{source}: variant {variant!r} is not a name")
    settings = raw.get("config")
    if not isinstance(settings, dict):
        raise WeightsError(f"{source}: malformed architecture config (no 'config' object)")
    settings = dict(settings)
    # Files written before size_multiple became a fact of the architecture still carry it.
    legacy_multiple = settings.pop("size_multiple", DANet.size_multiple)
    if legacy_multiple != DANet.size_multiple:
        raise WeightsError(
            f"{source}: size_multiple {legacy_multiple!r} does not fit DANet "
            f"({DANet.size_multiple})"
        )
    try:
        return DANetConfig(**settings)
    except TypeError as exc:
        raise WeightsError(f"{source}: malformed architecture config ({exc})") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: unreadable config ({exc})") from None
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: config is not a JSON object")
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
        raise WeightsNotAvailableError(f"{source}: weights file not found")
    if sha256 is not None and sha256_of(path) != sha256:
        raise WeightsError(
            f"{source}: sha256 does not match the recorded digest; "
            "the file is corrupt or was altered"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{source}: not a valid safetensors file ({first_line(exc)})") from None
    if config is None:
        if "derain" not in header:
            raise WeightsError(f"{source}: no architecture config in the file or beside it")
        try:
            config = json.loads(header["derain"])
        except json.JSONDecodeError:
            raise WeightsError(f"{source}: malformed architecture config in header") from None
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
        raise WeightsError(f"{source}: tensors do not match the architecture: {'; '.join(parts)}")
    for name, target in expected.items():
        value = tensors[name]
        if value.shape != target.shape:
            raise WeightsError(
                f"{source}: tensor {name} has shape {tuple(value.shape)}, "
                f"expected {tuple(target.shape)}"
            )
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise WeightsError(f"{source}: tensor {name} is not finite floating point")
    with torch.no_grad():
        for name, target in expected.items():
            target.copy_(tensors[name])


def load_shipped(info: ModelInfo) -> DANet:
    """The pretrained weights of a registry entry, from inside the installed package."""
    path = shipped_weights_dir() / info.weights.filename
    if info.weights.sha256 is None or not path.is_file():
        raise WeightsNotAvailableError(
            f"no pretrained weights for {info.name!r} are shipped in this version of derain; "
            "load your own with Deraining('path/to/model.safetensors') or "
            "Deraining('hf-hub:owner/repo')"
        )
    model = load_file(path, sha256=info.weights.sha256)
    if model.cfg != info.config:
        raise WeightsError(f"{path}: holds {model.cfg}, not the registry's {info.name!r}")
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


def _load_directory(directory: Path) -> DANet:
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise WeightsNotAvailableError(f"{directory}: no {WEIGHTS_NAME} in this folder")
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        return load_file(weights)
    config = _read_json(config_path)
    return load_file(weights, sha256=config.get("sha256"), config=config)


#: Seconds to wait for a TCP connection to the Hub (or the proxy) before treating it as
#: unreachable and using the local cache only.
HUB_PROBE_TIMEOUT_S = 3.0


def _hub_reachable(endpoint: str) -> bool:
    """Whether a TCP connection to the Hub's host (or to the proxy for it) opens quickly."""
    url = urllib.parse.urlsplit(endpoint)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urllib.parse.urlsplit(proxy if "//" in proxy else f"//{proxy}")
    default_port = 443 if url.scheme == "https" else 80
    try:
        with socket.create_connection(
            (url.hostname or "", url.port or default_port), timeout=HUB_PROBE_TIMEOUT_S
        ):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_hub_logs() -> Iterator[None]:
    """huggingface_hub's retry warnings off for one download; a failure is one line of ours."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_hub(source: ModelSource, spec: str, sha256: str | None = None) -> DANet:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # Transport failures of the HTTP client below huggingface_hub (httpx2 in 2.x, httpx in 1.x)
    # are not OSErrors, and a failed file GET (after its retries) raises them unwrapped.
    transport: tuple[type[Exception], ...] = ()
    for client in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            transport += (importlib.import_module(client).HTTPError,)
    failures: tuple[type[Exception], ...] = (HfHubHTTPError, OSError, *transport)
    repo_id, revision = source.value, source.revision
    from huggingface_hub import constants

    offline = bool(constants.HF_HUB_OFFLINE)
    # Without a network, huggingface_hub retries each request with back-off for about 25 s,
    # logging every retry. A short connection probe first makes that a quiet cache lookup.
    reachable = offline or _hub_reachable(constants.ENDPOINT)
    try:
        with _quiet_hub_logs():
            files = {
                name: Path(
                    hf_hub_download(
                        repo_id, name, revision=revision, local_files_only=not reachable
                    )
                )
                for name in (CONFIG_NAME, WEIGHTS_NAME)
            }
    except HFValidationError as exc:  # a ValueError: malformed repo id, never reaches the network
        raise ModelNotFoundError(
            f"{spec}: not a valid Hub repository id ({first_line(exc)})"
        ) from None
    except LocalEntryNotFoundError:
        if offline:
            raise WeightsNotAvailableError(
                f"{spec}: not in the local cache, and HF_HUB_OFFLINE is set (offline)"
            ) from None
        raise WeightsNotAvailableError(
            f"{spec}: not in the local cache and the Hub cannot be reached; download it once "
            "while online, then HF_HUB_OFFLINE=1 uses the cache without the network"
        ) from None
    except RepositoryNotFoundError:
        raise WeightsNotAvailableError(f"{spec}: no such repository on the Hub") from None
    except RevisionNotFoundError:
        raise WeightsNotAvailableError(f"{spec}: no revision {revision!r} in {repo_id}") from None
    except EntryNotFoundError:
        raise WeightsNotAvailableError(
            f"{spec}: repository has no {WEIGHTS_NAME} and {CONFIG_NAME}"
        ) from None
    except failures as exc:
        raise WeightsNotAvailableError(f"{spec}: download failed ({first_line(exc)})") from None
    _check_expected(files[WEIGHTS_NAME], sha256)
    config = _read_json(files[CONFIG_NAME])
    return load_file(files[WEIGHTS_NAME], sha256=config.get("sha256"), config=config)


def _sidecar(path: Path) -> Path | None:
    """The config recorded beside a weights file: ``NAME.json``, or the ``config.json`` of
    the folder :func:`save_pretrained` wrote when the file is its ``model.safetensors``."""
    for candidate in (path.with_suffix(".json"), path.parent / CONFIG_NAME):
        if candidate.is_file() and (candidate.name != CONFIG_NAME or path.name == WEIGHTS_NAME):
            return candidate
    return None


def _check_expected(path: Path, expected: str | None) -> None:
    """Refuse ``path`` unless its sha256 is ``expected`` (when one is given)."""
    if expected is None:
        return
    want = expected.strip().lower()
    if len(want) != 64 or any(c not in "0123456789abcdef" for c in want):
        raise WeightsError(f"sha256 must be 64 hex digits, got {expected!r}")
    if sha256_of(path) != want:
        raise WeightsError(
            f"{path}: sha256 does not match the expected {want[:12]}…; "
            "the file is corrupt, altered or another model"
        )


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
      (an ``.onnx`` path runs with ONNX Runtime, see :mod:`derain.onnx_model`);
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
            raise ModelNotFoundError(
                f"{source}: expected 'hf-hub:owner/repo' or 'hf-hub:owner/repo@rev'"
            )
        return ModelSource("hub", repo_id, revision or None)
    if source.startswith(LOCAL_PREFIX):
        return ModelSource("path", str(Path(source.removeprefix(LOCAL_PREFIX)).expanduser()))
    if source in list_models():
        return ModelSource("registry", source)
    if _looks_like_path(source):
        return ModelSource("path", str(Path(source).expanduser()))
    known = ", ".join(list_models())
    raise ModelNotFoundError(
        f"{source}: not a known model; known models: {known}. For a local folder or file "
        f"write ./{source} or {LOCAL_PREFIX}{source}; for the Hub, {HUB_PREFIX}owner/repo"
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
        _check_expected(shipped_weights_dir() / info.weights.filename, sha256)
        return load_shipped(info), f"{parsed.value} (shipped weights)"
    if parsed.kind == "hub":
        return _load_hub(parsed, os.fspath(source), sha256), os.fspath(source)
    path = Path(parsed.value)
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file():
            _check_expected(path / WEIGHTS_NAME, sha256)
        return _load_directory(path), str(path)
    if path.is_file():
        _check_expected(path, sha256)
        sidecar = _sidecar(path)
        if sidecar is not None:
            config = _read_json(sidecar)
            return load_file(path, sha256=config.get("sha256"), config=config), str(path)
        return load_file(path), str(path)
    raise ModelNotFoundError(f"{path}: no such file or folder")
