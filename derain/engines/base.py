"""The interface every engine implements: one loaded network on one device.

An engine knows the facts of its model (architecture, the size multiple its inputs need, the
digest of its weights, the precisions it computes in) and runs one forward pass on a tensor
already on its device. Everything around that pass (reading, tiling, padding, the layers,
writing) is :class:`derain.Deraining`'s and the same for every engine.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from ..errors import DerainError
from ..tiling import MemoryCost
from .precision import PRECISIONS, precision_name, resolve_dtype

if TYPE_CHECKING:
    from ..models.danet import DANet, DANetConfig

__all__ = ["DtypeRequest", "Engine", "LoadOptions", "ModelArgument"]

#: What a caller may give as a model: a source text or path, or an object an engine claims.
ModelArgument = str | os.PathLike[str] | object
#: A compute precision as :class:`derain.Deraining` takes it.
DtypeRequest = torch.dtype | str | None


@dataclass(frozen=True)
class LoadOptions:
    """How an engine loads a model.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (see
            :mod:`derain.engines.devices`).
        dtype: ``auto``, a precision name or a torch dtype (see :mod:`derain.engines.precision`).
        sha256: the expected hex digest of the model's file, if any.
    """

    device: str | torch.device = "auto"
    dtype: DtypeRequest = "auto"
    sha256: str | None = None


class Engine(ABC):
    """One network, loaded once, that runs a forward pass on a device tensor.

    Subclasses set :attr:`runtime`, :attr:`source`, :attr:`device` and :attr:`dtype`, and
    implement the abstract members. To add one, see ``docs/architecture.md``.

    Attributes:
        runtime: the engine's name in messages and in the server's model list.
        supported_dtypes: the compute precisions it runs (the default first).
        source: where the weights came from, as messages and run records name them.
        device: where :meth:`forward` runs (its outputs live there).
        dtype: the compute precision (one of :attr:`supported_dtypes`).
        config: the network's architecture.
        size_multiple: height and width :meth:`forward` needs its input to be multiples of.
    """

    runtime: ClassVar[str]
    supported_dtypes: ClassVar[tuple[torch.dtype, ...]]
    source: str
    device: torch.device
    dtype: torch.dtype
    config: DANetConfig
    size_multiple: int

    @classmethod
    @abstractmethod
    def claims(cls, model: ModelArgument) -> bool:
        """Whether this engine runs ``model`` (the registry asks each engine in turn)."""

    @classmethod
    @abstractmethod
    def load(cls, model: ModelArgument, options: LoadOptions) -> Engine:
        """Load ``model`` as ``options`` say (device, precision, expected file digest)."""

    @property
    @abstractmethod
    def weights_sha256(self) -> str:
        """Hex sha256 over the network's tensors, whatever file they came from."""

    @abstractmethod
    def forward(self, x: Tensor, with_layers: bool) -> tuple[Tensor, ...]:
        """One pass over ``x`` (N×3×H×W, float32 in [0, 1], on :attr:`input_device`; H and W
        multiples of :attr:`size_multiple`).

        Returns:
            ``(derained,)`` at input size, or with ``with_layers`` also the rain layer and
            the mask at half size; on :attr:`device`, in any float dtype.
        """

    @abstractmethod
    def with_dtype(self, dtype: torch.dtype) -> Engine:
        """The same weights computing in ``dtype`` (shared, not copied, where possible)."""

    @property
    def input_device(self) -> torch.device:
        """Where :meth:`forward` takes its input: :attr:`device`, unless the runtime copies
        host arrays itself."""
        return self.device

    def memory_cost(self, forward: Callable[[Tensor], Tensor]) -> MemoryCost:
        """What one tile costs in device memory, for choosing tile sizes (see
        :class:`derain.tiling.TilePlan`): measured by running ``forward`` (one pass with
        the layers, as :class:`derain.Deraining` runs it) where the device reports memory."""
        return MemoryCost.measure(forward, self.device, self.size_multiple)

    def compile(self, mode: str) -> None:
        """Opt in to a compiled forward for repeated shapes (see :meth:`Deraining.compile`).

        Raises:
            DerainError: this engine runs its model as it is (the default).
        """
        raise DerainError(f"{self.runtime} runs {self.source} as it is: only PyTorch compiles")

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the device ran out of memory (the caller retries smaller)."""
        return False

    def release_memory(self) -> None:  # noqa: B027  (optional hook: nothing to do by default)
        """Give cached device memory back after an out-of-memory error."""

    @property
    def network(self) -> DANet | None:
        """The PyTorch network, for engines that hold one (``None`` otherwise)."""
        return None

    def parameter_count(self) -> int | None:
        """How many parameters the network has, where the engine can tell."""
        net = self.network
        return sum(p.numel() for p in net.parameters()) if net is not None else None

    def choose_dtype(self, request: DtypeRequest) -> torch.dtype:
        """``request`` as a dtype this engine runs (``auto``: the first supported one that
        :func:`derain.engines.precision.resolve_dtype` would pick, else the engine's default).

        Raises:
            DerainError: a precision this engine does not run.
        """
        supported = self.supported_dtypes
        wanted = resolve_dtype(request, self.device)
        if wanted in supported:
            return wanted
        if request is None or request == "auto":
            return supported[0]
        names = ", ".join(precision_name(d) for d in supported)
        asked = precision_name(wanted) if wanted in PRECISIONS.values() else str(request)
        raise DerainError(
            f"{self.runtime} runs {self.source} in {names} "
            f"({', '.join(str(d) for d in supported)}); precision {asked} is not supported"
        )
