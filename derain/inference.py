"""The front object: ``Deraining(model).run(image)``."""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ._defaults import DEFAULT_MODEL
from ._version import __version__
from .devicepath import download, upload
from .engines import Engine, load_engine
from .engines.base import ModelArgument
from .engines.precision import precision_name
from .errors import DerainError, ImageError
from .io.imaging import Decoded, decode, open_image
from .models.weight_files import save_pretrained
from .record import RunRecord
from .tiling import (
    DEFAULT_OVERLAP,
    MIN_TILE,
    MemoryCost,
    TilePlan,
    TileProgress,
    TileRequest,
    parse_tile,
    run_tiled,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .io.video import Deflicker, VideoOptions
    from .models.danet import DANet, DANetConfig

__all__ = [
    "DEFAULT_OVERLAP",
    "MIN_TILE",
    "DerainResult",
    "Deraining",
]

T = TypeVar("T")
#: The in-memory kinds :meth:`Deraining.run` returns as it was given them.
Pixels = TypeVar("Pixels", Image.Image, np.ndarray, Tensor)


#: ``--save-rain`` shows the brightness removed ×8: a pixel that lost 1/8 of full brightness
#: or more is white. Real rain on the shipped weights: 99th percentile 0.05–0.07, maximum
#: 0.12–0.17 (four 640 px photos), so streaks show mid-grey to white and an image without rain
#: stays dark. Fixed, not per image, so strengths compare across images.
RAIN_VIEW_GAIN = 8.0
#: The ALM mask sits close to 0.5 (99.8 % of pixels within ±0.013 on the same photos); it is
#: shown as 0.5 + (mask − 0.5) × 32, mid-grey being neutral.
MASK_VIEW_GAIN = 32.0
#: ``return_layers``: ``False``, ``True`` (raw values) or ``"view"`` (scaled for viewing).
LayerRequest = bool | Literal["view"]


@dataclass(frozen=True)
class DerainResult(Generic[T]):
    """Output of :meth:`Deraining.run` with ``return_layers=True``.

    Attributes:
        image: the derained image, of the input's kind, size and mode.
        rain: the estimated rain layer (brightness the network removed), grayscale at image
            size, of the input's kind (an ``L`` image, an H×W array, a 1×H×W tensor).
        mask: the ALM association mask averaged over channels, like ``rain``.
    """

    image: T
    rain: T
    mask: T


class Deraining:
    """Remove rain from images with a DANet model.

    Args:
        model: a registry name (``"danet"``, ``"danet-plus"``: weights shipped in the package,
            no network), ``"hf-hub:owner/repo[@revision]"``, a local ``.safetensors`` file or
            folder, or a :class:`DANet` instance (copied: the caller's model is not changed).
            The grammar of these sources is :func:`derain.models.sources.parse_source`. A path to an
            exported ``.onnx`` file (or a :class:`derain.engines.onnx.OnnxModel`) runs with ONNX
            Runtime, in float32. An :class:`derain.engines.Engine` already loaded is used as it
            is (see :mod:`derain.engines` for the engines and how to add one).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (ONNX: ``auto``, ``cpu``,
            ``cuda``, ``cuda:N``).
        dtype: compute precision: ``"auto"`` (bf16 on CPUs with native bf16, fp16 on CUDA,
            fp32 elsewhere; see :mod:`derain.engines.precision`), ``"fp32"``, ``"bf16"``,
            ``"fp16"`` or a torch dtype.
        tile: tile side in pixels, ``"auto"`` (from the device's memory) or ``None`` (never tile).
        overlap: pixels shared by neighbouring tiles.
        sha256: the expected hex digest of the weights file (``config.json`` of a folder that
            :meth:`save_pretrained` wrote records it); a file that differs is refused.

    Raises:
        DerainError: an argument of the wrong type or value, in one line;
            :class:`~derain.WeightsError` for weights that are corrupt, altered or do not fit.

    Example:
        >>> from derain import Deraining
        >>> derain = Deraining("danet")  # doctest: +SKIP
        >>> clean = derain.run("rainy.jpg")  # a PIL image  # doctest: +SKIP
    """

    def __init__(
        self,
        model: ModelArgument = DEFAULT_MODEL,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str | None = "auto",
        tile: TileRequest | str = "auto",
        overlap: int = DEFAULT_OVERLAP,
        sha256: str | None = None,
    ) -> None:
        if isinstance(overlap, bool) or not isinstance(overlap, numbers.Integral):
            raise DerainError(f"overlap must be an integer >= 0, got {overlap!r}")
        if sha256 is not None and not isinstance(sha256, str):
            raise DerainError(f"sha256 must be a hex digest string, got {type(sha256).__name__}")
        tile_request = parse_tile(tile)
        if overlap < 0:
            raise DerainError(f"overlap must be an integer >= 0, got {overlap}")
        #: The engine that runs the network (see :mod:`derain.engines`).
        self.engine: Engine = load_engine(model, device=device, dtype=dtype, sha256=sha256)
        self.tile: TileRequest = tile_request
        self.overlap: int = int(overlap)

    @property
    def source(self) -> str:
        """Where the weights came from, as messages and run records name them."""
        return self.engine.source

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return self.engine.device

    @property
    def dtype(self) -> torch.dtype:
        """The compute precision."""
        return self.engine.dtype

    @property
    def model(self) -> DANet | None:
        """The PyTorch network (``None`` when an engine without one runs, e.g. ONNX)."""
        return self.engine.network

    @property
    def weights_sha256(self) -> str:
        """Hex sha256 over the network's tensors (names, shapes and float32 values).

        It identifies the weights whatever file, Hub repository or object they came from; an
        ONNX file records the digest of the weights it was exported from.
        """
        return self.engine.weights_sha256

    @property
    def record(self) -> RunRecord:
        """What made this object's outputs: derain's version, the model, its weights, the
        precision (see :mod:`derain.record`)."""
        return RunRecord(
            model=self.source,
            weights_sha256=self.weights_sha256,
            precision=precision_name(self.dtype),
            version=__version__,
        )

    @property
    def made_by(self) -> str:
        """The record written into each output, as text (:meth:`RunRecord.format`)."""
        return self.record.format()

    @property
    def config(self) -> DANetConfig:
        """The network's architecture."""
        return self.engine.config

    @property
    def size_multiple(self) -> int:
        """Height and width the network needs internally (inputs are padded to it)."""
        return self.engine.size_multiple

    def tile_plan(self, image_size: tuple[int, int] | None = None) -> TilePlan:
        """The tile side a run uses, and why (see :class:`derain.tiling.TilePlan`).

        Args:
            image_size: (height, width) of the image; on CUDA with ``tile="auto"`` an image
                that fits the free memory runs whole.
        """
        return TilePlan.choose(self.tile, self.device, lambda: self._memory_cost, image_size)

    @functools.cached_property
    def _memory_cost(self) -> MemoryCost:
        """What a run costs in device memory, as the engine tells (measured once on CUDA)."""
        with torch.inference_mode():
            forward = lambda x: self._forward_tile(x, with_layers=True)  # noqa: E731
            return self.engine.memory_cost(forward)

    def tile_size(self) -> int | None:
        """The tile side used for the next run (``None``: whole images)."""
        return self.tile_plan().tile

    def compile(self, mode: Literal["compile", "graphs"] = "compile") -> Deraining:
        """Opt in to a compiled forward for repeated shapes (video, same-size photos).

        A tile or image shape compiles the second time it runs (seconds to minutes; a one-off
        shape never pays), later calls of that shape run the compiled code; ``"graphs"`` also
        replays CUDA graphs, cutting launch costs. If compiling fails the run goes on eagerly,
        with one :class:`~derain.DerainWarning`. ``benchmarks/gpu_suite.sh`` measures the
        compile cost against the saving.

        Returns:
            This object, so ``Deraining("danet").compile()`` chains.

        Raises:
            DerainError: an engine without a PyTorch network (ONNX), or an unknown mode.
        """
        self.engine.compile(mode)
        return self

    def _forward_tile(self, x: Tensor, with_layers: bool) -> Tensor:
        outs = self.engine.forward(x.to(self.engine.input_device, non_blocking=True), with_layers)
        parts = [outs[0].float()]
        if with_layers:
            size = x.shape[-2:]
            up = lambda t: F.interpolate(t.float(), size=size, mode="bilinear")  # noqa: E731
            parts += [up(outs[1]).mean(1, keepdim=True), up(outs[2]).mean(1, keepdim=True)]
        return torch.cat(parts, dim=1)

    def _run_rgb(
        self, rgb: np.ndarray, with_layers: bool, progress: TileProgress | None
    ) -> np.ndarray:
        # One upload to where the engine takes its input, all arithmetic there, one download
        # (derain.devicepath).
        x = upload(rgb, self.engine.input_device)
        plan = self.tile_plan(rgb.shape[:2])
        while True:
            try:
                with torch.inference_mode():
                    out = run_tiled(
                        lambda t: self._forward_tile(t, with_layers),
                        x,
                        plan.tile,
                        self.overlap,
                        self.size_multiple,
                        progress,
                    )
                    return download(out, as_uint8=rgb.dtype == np.uint8 and not with_layers)
            except Exception as exc:
                if not self.engine.is_out_of_memory(exc):
                    raise
                self.engine.release_memory()
                plan = plan.halved(max(x.shape[-2:]))

    def _run_one(
        self, image: Any, name: str, return_layers: LayerRequest, progress: TileProgress | None
    ) -> Any:
        if isinstance(image, (str, os.PathLike)):
            name = os.fspath(image)
            image = open_image(image)
        decoded: Decoded = decode(image, name)
        restore, restore_gray = decoded.restore, decoded.restore_gray
        out = self._run_rgb(decoded.rgb, bool(return_layers), progress)
        del decoded  # peak memory is image-sized buffers: drop the input
        result = restore(out[:, :, :3])  # clamped to [0, 1] (uint8 for 8-bit RGB) on the device
        if not return_layers:
            return result
        # The rain layer is what was removed: brightness in [0, 1] after clipping.
        rain, mask = out[:, :, 3], out[:, :, 4]
        if return_layers == "view":  # fixed gains, so rain strengths compare across images
            rain = rain * RAIN_VIEW_GAIN
            mask = 0.5 + (mask - 0.5) * MASK_VIEW_GAIN
        rain = np.clip(rain, 0.0, 1.0)
        return DerainResult(result, restore_gray(rain), restore_gray(np.clip(mask, 0.0, 1.0)))

    @overload
    def run(
        self,
        image: str | os.PathLike[str],
        *,
        return_layers: Literal[False] = False,
        progress: TileProgress | None = None,
    ) -> Image.Image: ...
    @overload
    def run(
        self,
        image: str | os.PathLike[str],
        *,
        return_layers: Literal[True, "view"],
        progress: TileProgress | None = None,
    ) -> DerainResult[Image.Image]: ...
    @overload
    def run(
        self,
        image: Pixels,
        *,
        return_layers: Literal[False] = False,
        progress: TileProgress | None = None,
    ) -> Pixels: ...
    @overload
    def run(
        self,
        image: Pixels,
        *,
        return_layers: Literal[True, "view"],
        progress: TileProgress | None = None,
    ) -> DerainResult[Pixels]: ...
    @overload
    def run(
        self,
        image: list[Any] | tuple[Any, ...],
        *,
        return_layers: LayerRequest = False,
        progress: TileProgress | None = None,
    ) -> list[Any]: ...
    def run(
        self,
        image: Any,
        *,
        return_layers: LayerRequest = False,
        progress: TileProgress | None = None,
    ) -> Any:
        """Derain one image, a batch tensor, or a list of images.

        Args:
            image: a file path (returns a PIL image), a PIL image, a numpy array
                (H×W or H×W×C; uint8, uint16 or float in [0, 1]), a torch tensor (C×H×W or
                B×C×H×W in [0, 1]) or a list of these.
            return_layers: also return the rain layer and the ALM mask at image size, as a
                :class:`DerainResult`: ``True`` gives the values themselves (the brightness
                removed, the mask in [0, 1]); ``"view"`` scales them for a person to look at,
                with fixed gains (:data:`RAIN_VIEW_GAIN`, :data:`MASK_VIEW_GAIN`), the way
                ``--save-rain`` writes them.
            progress: called as ``progress(done, total)`` after each tile.

        Returns:
            The derained image of the same kind, size, mode and dtype as the input (a list for
            a list).
        """
        if isinstance(image, (list, tuple)):
            return [self.run(im, return_layers=return_layers, progress=progress) for im in image]
        if isinstance(image, Tensor) and image.ndim == 4:
            outs = [
                self._run_one(im, f"image[{i}]", return_layers, progress)
                for i, im in enumerate(image)
            ]
            if not return_layers:
                return torch.stack(outs) if outs else image.clone()
            return DerainResult(
                torch.stack([o.image for o in outs]),
                torch.stack([o.rain for o in outs]),
                torch.stack([o.mask for o in outs]),
            )
        if isinstance(image, Tensor) and image.ndim not in (3,):
            raise ImageError(f"image: tensor of shape {tuple(image.shape)} is not C×H×W or B×C×H×W")
        return self._run_one(image, "image", return_layers, progress)

    __call__ = run

    def run_frames(
        self, frames: Iterable[Any], *, deflicker: Deflicker | None = None
    ) -> Iterator[Any]:
        """Derain a stream of frames lazily, for your own video pipeline.

        Args:
            frames: PIL images or H×W×3 uint8 RGB arrays, in order.
            deflicker: optional temporal smoothing (:class:`derain.io.video.Deflicker`).

        Yields:
            Each derained frame, of the kind, size and mode it came in.
        """
        from .io.video import derain_frames

        return derain_frames(self, frames, deflicker=deflicker)

    def run_video(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        **options: Unpack[VideoOptions],
    ) -> Path:
        """Derain a video file into ``dst`` (needs ``pip install 'derain[video]'``).

        Keeps size, timestamps (variable frame rate too), rotation, pixel aspect and colour
        tags; copies the audio untouched; writes atomically. The keyword options (``rain``,
        ``codec``, ``crf``, ``deflicker``, ``progress``, ``record``) are those of
        :func:`derain.io.video.derain_video`.
        """
        from .io.video import derain_video

        return derain_video(self, src, dst, **options)

    def save_pretrained(
        self, directory: str | os.PathLike[str], variant: str | None = None
    ) -> Path:
        """Write the model as ``model.safetensors`` + ``config.json`` (Hub-ready).

        The tensors are copied to the CPU; the model stays where it runs.
        """
        net = self.engine.network
        if net is None:
            raise DerainError.about(
                self.source, f"the {self.engine.runtime} engine has no PyTorch network to save"
            )
        return save_pretrained(net, directory, variant=variant)

    def __repr__(self) -> str:
        return (
            f"Deraining(source={self.source!r}, device={self.device}, dtype={self.dtype}, "
            f"tile={self.tile!r}, overlap={self.overlap})"
        )
