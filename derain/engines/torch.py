"""The PyTorch engine: a DANet on a torch device, in fp32 or under bf16/fp16 autocast."""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import DerainError, DerainWarning
from ..models.danet import DANet, DANetConfig
from ..models.sources import resolve_model
from ..models.weight_files import tensors_sha256
from .base import DtypeRequest, Engine, LoadOptions, ModelArgument
from .devices import resolve_device
from .precision import PRECISIONS

__all__ = ["FAST_MODES", "FixedShapeForward", "TorchEngine"]

#: ``Deraining.compile`` modes: ``"compile"`` (kernels fused by ``torch.compile``) and
#: ``"graphs"`` (the same, replayed as CUDA graphs: ``mode="reduce-overhead"``).
FAST_MODES = {"compile": "default", "graphs": "reduce-overhead"}


class FixedShapeForward:
    """The network compiled for the input shapes it meets, with the eager network as fallback.

    Worth it where the same shape comes back many times (video frames, a folder of same-size
    photos, fixed tiles): a shape runs eagerly the first time and compiles the second time it
    comes (a one-off shape never pays for compiling), later calls run the compiled code. Any
    failure (no compiler for this platform, a graph break the backend refuses) warns once and
    falls back to the eager network for good, so opting in never breaks a run.
    """

    def __init__(self, net: torch.nn.Module, mode: str) -> None:
        if mode not in FAST_MODES:
            raise DerainError(f"unknown fast path {mode!r}; use {' or '.join(FAST_MODES)}")
        self.net, self.mode = net, mode
        self.compiled: Any = torch.compile(net, mode=FAST_MODES[mode], dynamic=False)
        #: Why the fast path was given up (``None`` while it runs).
        self.failed: str | None = None
        self._seen: set[tuple[int, ...]] = set()

    def __call__(self, x: Tensor) -> Any:
        shape = tuple(x.shape)
        if shape not in self._seen:
            self._seen.add(shape)
        elif self.failed is None:
            try:
                return self.compiled(x)
            except Exception as exc:  # a backend's own errors: fall back, never fail the run
                first = (str(exc).strip().splitlines() or [""])[0]
                self.failed = f"{type(exc).__name__}: {first}"
                warnings.warn(
                    f"torch.compile ({self.mode}) failed, running eagerly: {self.failed}",
                    DerainWarning,
                    stacklevel=2,
                )
        return self.net(x)


class TorchEngine(Engine):
    """A DANet run by PyTorch (sources: registry names, ``hf-hub:``, files, folders, a DANet).

    Args:
        net: the network (moved to ``device``; pass a copy to keep yours as it is).
        source: where it came from.
        device: where it runs.
        dtype: fp32, the autocast precision, or ``auto`` (see :mod:`derain.engines.precision`).
    """

    runtime: ClassVar[str] = "pytorch"
    supported_dtypes: ClassVar[tuple[torch.dtype, ...]] = tuple(PRECISIONS.values())

    def __init__(
        self, net: DANet, source: str, device: torch.device, dtype: DtypeRequest = "auto"
    ) -> None:
        # channels_last measured faster on CPU (AVX2/AVX-512) and on CUDA tensor cores.
        net = net.eval().requires_grad_(False)
        # (torch's stubs omit Module.to's memory_format, which it takes since 1.5)
        self.net = net.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.source = source
        self.device = device
        self.dtype = self.choose_dtype(dtype)
        self.config: DANetConfig = net.cfg
        self.size_multiple = net.size_multiple
        #: The compiled forward, once :meth:`derain.Deraining.compile` opted in.
        self.fast: FixedShapeForward | None = None

    @classmethod
    def claims(cls, model: ModelArgument) -> bool:
        """Any source text or path (the last engine asked), or a :class:`DANet`."""
        return isinstance(model, (str, os.PathLike, DANet))

    @classmethod
    def load(cls, model: ModelArgument, options: LoadOptions) -> TorchEngine:
        """See :meth:`Engine.load`; a :class:`DANet` is copied (the caller's is not changed)."""
        if isinstance(model, DANet):
            if options.sha256 is not None:
                raise DerainError("sha256 checks a weights file; a DANet object has none")
            net, source = copy.deepcopy(model), "in-memory model"
        elif isinstance(model, (str, os.PathLike)):
            net, source = resolve_model(model, sha256=options.sha256)
        else:
            raise DerainError(f"the PyTorch engine cannot load a {type(model).__name__}")
        return cls(net, source, resolve_device(options.device), options.dtype)

    @property
    def weights_sha256(self) -> str:
        if not hasattr(self, "_sha256"):
            self._sha256 = tensors_sha256(self.net)
        return self._sha256

    @property
    def network(self) -> DANet:
        return self.net

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def forward(self, x: Tensor, with_layers: bool) -> tuple[Tensor, ...]:
        x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            out = (self.fast or self.net)(x)
        return (out.derained, out.rain, out.mask) if with_layers else (out.derained,)

    def with_dtype(self, dtype: torch.dtype) -> TorchEngine:
        twin = copy.copy(self)  # the same network object: the weights are shared
        twin.dtype = self.choose_dtype(dtype)
        return twin

    def compile(self, mode: str) -> None:
        self.fast = FixedShapeForward(self.net, mode)

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return self.device.type == "cuda" and isinstance(exc, torch.cuda.OutOfMemoryError)

    def release_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
