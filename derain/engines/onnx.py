"""ONNX: export a DANet with torch's exporter, and run the file with ONNX Runtime.

The exported graph takes ``image`` (N×3×H×W, RGB, float32 in [0, 1]; H and W dynamic, each a
multiple of the size multiple) and returns ``derained`` (N×3×H×W), ``rain`` (N×3×H/2×W/2)
and ``mask`` (N×C×H/2×W/2), the outputs :class:`derain.Deraining` uses. Facts a runtime
needs travel in the file's metadata (``metadata_props``), under keys that start with
``derain.``; see :data:`METADATA_KEYS`.

A file and its digests travel together. :func:`export_onnx` writes ``model.json`` beside
``model.onnx`` with the file's sha256, and puts the digest of the graph's initializers (the
weights as the graph holds them) in the metadata as ``derain.initializers_sha256``. Loading
refuses a file that matches neither: a file altered after export cannot run under the
exported weights' name. A file that can be checked by neither (no ``.json`` beside it, no
initializer digest inside it) runs with a :class:`~derain.errors.DerainWarning`, and its
outputs record the file's own sha256 instead of the weights digest it claims.

Exporting needs ``onnx`` and ``onnxscript`` (torch's exporter uses them), running needs
``onnxruntime``: ``pip install "derain[onnx]"``.

:class:`OnnxEngine` is the :class:`~derain.engines.base.Engine` that runs such a file for
:class:`~derain.inference.Deraining`, in float32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_write
from ..errors import (
    DerainError,
    DerainWarning,
    ModelNotFoundError,
    WeightsError,
    WeightsNotAvailableError,
    first_line,
)
from ..models.danet import DANet, DANetConfig
from ..models.sources import parse_source, resolve_model
from ..models.weight_files import sha256_of, tensors_sha256
from ..tiling import MemoryCost
from .base import DtypeRequest, Engine, LoadOptions, ModelArgument
from .devices import CUDA_PROVIDER, onnx_providers

__all__ = [
    "INPUT_CONVENTION",
    "METADATA_KEYS",
    "OnnxEngine",
    "OnnxModel",
    "export_onnx",
    "initializers_sha256",
    "onnx_path",
]

ONNX_SUFFIX = ".onnx"
INPUT_NAME = "image"
OUTPUT_NAMES = ("derained", "rain", "mask")
INPUT_CONVENTION = "RGB float32 NCHW 0..1"
FORMAT_VERSION = "1"
#: Largest height and width, in units of the size multiple, the exported graph accepts
#: (16 × 1024 = 16384 px); tiling keeps real runs far below it.
MAX_SIDE_UNITS = 1024
#: Opset of the exported graph: the newest that ONNX Runtime 1.17+ (Feb 2024) runs.
OPSET = 18
#: Example input for tracing (multiples of 16, not square, so no side is specialised).
TRACE_SIZE = (64, 96)

#: The metadata written into every exported file.
METADATA_KEYS = {
    "derain.format_version": "layout of these keys",
    "derain.model": "model name (registry name, or the source it was exported from)",
    "derain.source": "where the weights came from, as Deraining reported it",
    "derain.weights_sha256": "sha256 of the weights, as Deraining.weights_sha256 gives it",
    "derain.initializers_sha256": "sha256 of the graph's initializers (initializers_sha256)",
    "derain.config": "architecture (DANetConfig as JSON)",
    "derain.size_multiple": "H and W must be multiples of this",
    "derain.input": INPUT_CONVENTION,
    "derain.outputs": "derained N×3×H×W; rain N×3×H/2×W/2; mask N×C×H/2×W/2; all 0..1 scale",
    "derain.exporter": "torch exporter and opset used",
}

_INSTALL_HINT = 'pip install "derain[onnx]"'


def onnx_path(source: str | os.PathLike[str]) -> Path | None:
    """The file a model source names when it is an ONNX file, else ``None``.

    In the grammar of :func:`derain.models.sources.parse_source`, a path whose name ends in
    ``.onnx``.
    """
    try:
        parsed = parse_source(source)
    except ModelNotFoundError:
        return None
    if parsed.kind != "path" or not parsed.value.lower().endswith(ONNX_SUFFIX):
        return None
    return Path(parsed.value)


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``model.json`` beside ``model.onnx``: the file's sha256 and its metadata."""
    return Path(path).with_suffix(".json")


class _Outputs(torch.nn.Module):
    """DANet with the three outputs the runtime uses, as a plain tuple."""

    def __init__(self, net: DANet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.net(x)
        return out.derained, out.rain, out.mask


def _model_name(source: str | os.PathLike[str] | DANet, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, DANet):
        return "in-memory model"
    return os.fspath(source)


def export_onnx(
    model: str | os.PathLike[str] | DANet,
    output: str | os.PathLike[str],
    *,
    name: str | None = None,
    sha256: str | None = None,
    on_start: Callable[[str], None] | None = None,
) -> Path:
    """Export a DANet to ONNX with dynamic batch, height and width.

    Uses torch's dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``): it traces
    the network with ``torch.export``, so the size rules (H and W multiples of
    ``size_multiple``) become symbolic shapes instead of constants baked in by a trace.

    Args:
        model: any source :class:`derain.Deraining` accepts (registry name, ``hf-hub:`` id,
            ``.safetensors`` file or folder) or a :class:`DANet`.
        output: the ``.onnx`` file to write; ``<stem>.json`` with its sha256 goes beside it.
        name: model name for the metadata (default: the source as given).
        sha256: expected digest of the weights file, as :class:`derain.Deraining` takes it.
        on_start: called with the source once the weights are loaded, before the trace
            (which takes a minute or more), e.g. to print a progress line.

    Returns:
        The path of the written ``.onnx`` file.

    Raises:
        DerainError: the export packages are missing, or the output path is not ``.onnx``.

    Example:
        >>> export_onnx("danet", "danet.onnx")  # doctest: +SKIP
    """
    output = _check_export(output)
    if isinstance(model, DANet):
        net, source = model, "in-memory model"
    else:
        net, source = resolve_model(model, sha256=sha256)
    if on_start is not None:
        on_start(source)
    # Export from a float32 CPU copy: the caller's model is left as it was.
    cpu = DANet(net.cfg)
    cpu.load_state_dict(net.state_dict())
    metadata = _export_metadata(cpu, _model_name(model, name), source, net.size_multiple)
    program = _trace(cpu, net.size_multiple, output)
    _save_export(program, output, metadata)
    return output


def _check_export(output: str | os.PathLike[str]) -> Path:
    """The output path, once it ends in ``.onnx`` and the export packages are installed."""
    output = Path(output)
    if output.suffix.lower() != ONNX_SUFFIX:
        raise DerainError.about(output, "the output of an ONNX export must end in .onnx")
    missing = [m for m in ("onnx", "onnxscript") if not _importable(m)]
    if missing:
        raise DerainError(f"ONNX export needs {' and '.join(missing)}: {_INSTALL_HINT}")
    return output


def _export_metadata(cpu: DANet, model: str, source: str, multiple: int) -> dict[str, str]:
    """The ``derain.`` metadata of an export (all of :data:`METADATA_KEYS` but the
    initializer digest, which is added once the file is saved)."""
    return {
        "derain.format_version": FORMAT_VERSION,
        "derain.model": model,
        "derain.source": source,
        "derain.weights_sha256": tensors_sha256(cpu),
        "derain.config": json.dumps(dataclasses.asdict(cpu.cfg), sort_keys=True),
        "derain.size_multiple": str(multiple),
        "derain.input": INPUT_CONVENTION,
        "derain.outputs": METADATA_KEYS["derain.outputs"],
        "derain.exporter": f"torch {torch.__version__} dynamo exporter, opset {OPSET}",
    }


def _trace(cpu: DANet, multiple: int, output: Path) -> Any:
    """Export ``cpu`` with torch's dynamo exporter: dynamic batch, and H and W any multiple
    of ``multiple`` up to :data:`MAX_SIDE_UNITS` of them."""
    wrapper = _Outputs(cpu).eval()  # the wrapper too, or torch warns of training mode
    dim = torch.export.Dim
    h, w = dim("h_units", min=1, max=MAX_SIDE_UNITS), dim("w_units", min=1, max=MAX_SIDE_UNITS)
    shapes = {"x": {0: dim("batch", min=1, max=1024), 2: multiple * h, 3: multiple * w}}
    example = torch.rand(2, 3, *TRACE_SIZE)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=shapes,
            opset_version=OPSET,
            verbose=False,
        )
    if program is None:  # only the legacy exporter (dynamo=False) returns nothing
        raise DerainError.about(output, "torch's ONNX exporter returned no program")
    return program


def _save_export(program: Any, output: Path, metadata: dict[str, str]) -> None:
    """Write the ``.onnx`` file with ``metadata`` (and its initializer digest), then the
    ``.json`` beside it with the file's sha256."""
    program.model.metadata_props.update(metadata)
    atomic_write(output, lambda tmp: _save_with_digest(program, Path(tmp)))
    side = {"format": "onnx", "sha256": sha256_of(output), **metadata}
    text = json.dumps(side, indent=2, sort_keys=True) + "\n"
    atomic_write(sidecar_path(output), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _save_with_digest(program: Any, path: Path) -> None:
    """Save the exported program, then add the digest of its initializers as saved."""
    import onnx

    program.save(str(path), external_data=False)
    proto = onnx.load(str(path))
    digest = initializers_sha256(proto)
    proto.metadata_props.add(key="derain.initializers_sha256", value=digest)
    onnx.save(proto, str(path))


def initializers_sha256(proto: Any) -> str:
    """Hex sha256 over an ONNX graph's initializers (names, types, shapes and values).

    Computed from the values, not from their encoding in the file, so it survives a re-save;
    any change to a weight changes it.
    """
    from onnx import numpy_helper

    digest = hashlib.sha256()
    for init in sorted(proto.graph.initializer, key=lambda t: t.name):
        digest.update(f"{init.name}:{init.data_type}:{tuple(init.dims)};".encode())
        digest.update(np.ascontiguousarray(numpy_helper.to_array(init)).tobytes())
    return digest.hexdigest()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class OnnxModel:
    """An exported DANet run by ONNX Runtime; :class:`derain.Deraining` accepts it as a model.

    Args:
        path: the ``.onnx`` file.
        sha256: expected digest of the file; by default the one in ``<stem>.json`` beside it,
            if that exists. A mismatch is refused before the file is parsed.
        device: ``auto`` (CUDA when ONNX Runtime has it), ``cpu``, ``cuda`` or ``cuda:N``
            (see :func:`derain.engines.devices.onnx_providers`).
        threads: intra-op threads (default: ONNX Runtime's, one per physical core).

    Raises:
        WeightsError: a missing, altered or malformed file, or one this package did not write.
        DerainError: ``onnxruntime`` is not installed, or the device is not available.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sha256: str | None = None,
        device: str | torch.device = "auto",
        threads: int | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        source = str(self.path)
        if not self.path.is_file():
            raise WeightsNotAvailableError.about(source, "ONNX file not found")
        if sha256 is None and sidecar_path(self.path).is_file():
            sha256 = _read_sidecar_digest(sidecar_path(self.path))
        file_sha256 = sha256_of(self.path)
        if sha256 is not None and file_sha256 != sha256:
            raise WeightsError.about(
                source,
                "sha256 does not match the recorded digest; the file is corrupt or was altered",
            )
        try:
            import onnxruntime as ort
        except ImportError:
            raise DerainError.about(
                source, f"running ONNX models needs onnxruntime: {_INSTALL_HINT}"
            ) from None
        try:
            providers, self.device = onnx_providers(ort.get_available_providers(), device)
        except DerainError as exc:
            raise DerainError.about(source, f"{exc}") from None
        #: The execution providers' names, the preferred first.
        self.providers = [p if isinstance(p, str) else p[0] for p in providers]
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on the user's terminal
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise WeightsError.about(
                source, f"not a valid ONNX model ({first_line(exc)})"
            ) from None
        started = self.session.get_providers()  # ONNX Runtime drops one that cannot start
        self.device = _started_device(self.device, started, str(device), source)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.config, self.size_multiple = _check_metadata(self.metadata, self.session, source)
        #: Whether the file was checked against a digest: its ``.json`` (or ``sha256``), or
        #: the initializer digest in its metadata. An unchecked file runs under its own sha256.
        self.verified = _check_initializers(self.path, self.metadata, source) or sha256 is not None
        #: The sha256 of the file itself.
        self.file_sha256 = file_sha256
        if not self.verified:
            warnings.warn(
                f"{source}: cannot check this ONNX file (no .json beside it and no initializer "
                "digest in it); its outputs record the file's sha256, not the weights it names",
                DerainWarning,
                stacklevel=2,
            )

    @property
    def weights_sha256(self) -> str:
        """The digest of what runs: the exported weights' digest when the file was checked
        against its ``.json`` or its initializer digest, else the file's own sha256."""
        if not self.verified:
            return self.file_sha256
        return self.metadata.get("derain.weights_sha256", "") or self.file_sha256

    @property
    def name(self) -> str:
        """The model name recorded at export."""
        return self.metadata["derain.model"]

    def run(self, x: np.ndarray, with_layers: bool = False) -> list[np.ndarray]:
        """Run the graph on N×3×H×W float32 (H, W multiples of :attr:`size_multiple`).

        Returns:
            ``[derained]``, or ``[derained, rain, mask]`` with ``with_layers``.
        """
        names = list(OUTPUT_NAMES if with_layers else OUTPUT_NAMES[:1])
        feed = {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)}
        return self.session.run(names, feed)

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, providers={self.providers})"


def _read_sidecar_digest(path: Path) -> str | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError.about(path, f"unreadable digest file ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("sha256", ""), str):
        raise WeightsError.about(path, "digest file is not a JSON object with a sha256 string")
    return raw.get("sha256")


def _started_device(
    wanted: torch.device, started: list[str], asked: str, source: str
) -> torch.device:
    """The device the session runs on: ONNX Runtime falls back to the CPU, with only a log
    line, when its CUDA provider cannot start (CUDA or cuDNN libraries missing)."""
    if wanted.type != "cuda" or started[:1] == [CUDA_PROVIDER]:
        return wanted
    if asked == "auto":
        return torch.device("cpu")
    raise DerainError.about(
        source,
        f"onnxruntime could not start its CUDA provider on {wanted} "
        "(are the CUDA and cuDNN libraries onnxruntime-gpu needs installed?)",
    )


def _check_initializers(path: Path, meta: dict[str, str], source: str) -> bool:
    """Recompute the initializer digest the metadata records; ``False`` when it records none.

    Raises:
        WeightsError: the initializers differ from the recorded digest (an altered file).
    """
    recorded = meta.get("derain.initializers_sha256")
    if not recorded:
        return False
    try:
        import onnx
    except ImportError:
        raise DerainError.about(
            source, f"checking ONNX files needs onnx: {_INSTALL_HINT}"
        ) from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises protobuf's untyped errors for bad files
        raise WeightsError.about(source, f"not a valid ONNX model ({first_line(exc)})") from None
    if initializers_sha256(proto) != recorded:
        raise WeightsError.about(
            source,
            "its weights do not match the digest in its metadata; "
            "the file was altered after export",
        )
    return True


def _check_metadata(meta: dict[str, str], session: Any, source: str) -> tuple[DANetConfig, int]:
    if meta.get("derain.format_version") != FORMAT_VERSION:
        raise WeightsError.about(
            source,
            f"not an ONNX file exported by derain (no derain.format_version "
            f"{FORMAT_VERSION} in its metadata)",
        )
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or outputs[: len(OUTPUT_NAMES)] != list(OUTPUT_NAMES):
        raise WeightsError.about(source, f"unexpected graph inputs {inputs} or outputs {outputs}")
    try:
        config = DANetConfig(**json.loads(meta["derain.config"]))
        multiple = int(meta["derain.size_multiple"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError.about(source, f"malformed derain metadata ({exc})") from None
    if multiple < 1:
        raise WeightsError.about(
            source, f"size multiple {multiple} in the metadata is not positive"
        )
    return config, multiple


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
    def claims(cls, model: ModelArgument) -> bool:
        """An :class:`OnnxModel`, or a path whose name ends in ``.onnx``."""
        if isinstance(model, OnnxModel):
            return True
        return isinstance(model, (str, os.PathLike)) and onnx_path(model) is not None

    @classmethod
    def load(cls, model: ModelArgument, options: LoadOptions) -> OnnxEngine:
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

    @property
    def input_device(self) -> torch.device:
        """The host: ONNX Runtime takes NumPy arrays and does its own copies."""
        return torch.device("cpu")

    def memory_cost(self, forward: Callable[[Tensor], Tensor]) -> MemoryCost:
        """Estimated from the architecture: ONNX Runtime's memory is not torch's to measure."""
        return MemoryCost.estimate(self.config.channels)

    def with_dtype(self, dtype: torch.dtype) -> OnnxEngine:
        self.choose_dtype(dtype)  # refuses anything but float32
        return self
