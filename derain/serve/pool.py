"""The models a server holds, and the bounded pool that runs them off the event loop.

Each model is loaded once, at startup, with one :class:`derain.Deraining` per precision
sharing its weights. Work runs on ``workers`` threads; at most ``workers + queue`` requests
are admitted at a time, and the next one is refused at once (HTTP 503) instead of waiting in
memory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..batch import derain_image
from ..engines.precision import DEVICE_PRECISIONS, PRECISIONS, precision_name
from ..errors import DerainError
from ..inference import Deraining
from ..io.animation import Animation
from ..io.imaging import open_frames
from ..models.sources import HUB_PREFIX, MODEL_FILE_SUFFIXES, parse_source
from ..record import RunRecord
from ..tiling import TileProgress
from .uploads import Busy, ClientGone, Probe, RequestProblem

__all__ = [
    "Derained",
    "LoadedModel",
    "ModelPool",
    "ProgressBoard",
    "WorkerPool",
    "load_models",
    "model_key",
]

T = TypeVar("T")


def model_key(spec: str) -> str:
    """The name clients use for a ``--model`` value: never the server's file path.

    Read with the grammar of :func:`derain.models.sources.parse_source`: a Hub id keeps its
    ``owner/repo[@revision]``, a registry name stays, a path becomes its file's stem or its
    folder's name.
    """
    source = parse_source(spec)
    if source.kind == "hub":
        return spec.removeprefix(HUB_PREFIX)
    if source.kind == "registry":
        return source.value
    path = Path(source.value)
    return path.stem if path.suffix in MODEL_FILE_SUFFIXES else path.name


@dataclass(frozen=True)
class LoadedModel:
    """One model, as a front object per precision (the first is the default)."""

    name: str
    by_precision: dict[str, Deraining]
    #: What each answer records about its maker (EXIF Software, PNG text): the version, the
    #: model's name (not the server's path to it), the weights' sha256 and the default
    #: precision (see :mod:`derain.record`).
    record: RunRecord

    @property
    def made_by(self) -> str:
        """:attr:`record` as the text written into each answer."""
        return self.record.format()

    @property
    def precisions(self) -> list[str]:
        return list(self.by_precision)

    def describe(self) -> dict[str, Any]:
        engine = next(iter(self.by_precision.values())).engine
        return {
            "name": self.name,
            "precisions": self.precisions,
            "default_precision": self.precisions[0],
            "device": str(engine.device),
            "runtime": engine.runtime,
            "parameters": engine.parameter_count(),
            "weights_sha256": engine.weights_sha256,
        }


@dataclass(frozen=True)
class Derained:
    """The encoded answer to one request."""

    body: bytes
    media_type: str
    format: str
    seconds: float
    rain: bytes | None = None
    mask: bytes | None = None

    def as_json(self) -> dict[str, Any]:
        """The answer with its layers, images as base64 strings."""

        def image(data: bytes | None, media_type: str) -> dict[str, str] | None:
            if data is None:
                return None
            return {"media_type": media_type, "base64": base64.b64encode(data).decode("ascii")}

        return {
            "image": image(self.body, self.media_type),
            "rain": image(self.rain, "image/png"),
            "mask": image(self.mask, "image/png"),
            "seconds": round(self.seconds, 3),
        }

    def json_bytes(self) -> bytes:
        """:meth:`as_json` encoded (base64 of large images: run it off the event loop)."""
        return json.dumps(self.as_json()).encode()


@dataclass
class _Counts:
    admitted: int = 0  # changed on the event loop only
    running: int = 0  # changed by the workers, under the lock
    lock: threading.Lock = field(default_factory=threading.Lock)


class WorkerPool:
    """``workers`` threads and room for ``queue`` more requests; beyond that, :class:`Busy`."""

    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise DerainError(f"need workers >= 1 and queue >= 0, got {workers} and {queue}")
        self.workers = workers
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="derain-worker")
        self._counts = _Counts()

    @property
    def running(self) -> int:
        """Requests a worker is computing now."""
        return self._counts.running

    @property
    def waiting(self) -> int:
        """Requests admitted (their body complete) and waiting for a worker."""
        return max(0, self._counts.admitted - self._counts.running)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Callable[..., Any]]:
        """Admit one request or raise :class:`Busy`; yields ``run(fn, *args)`` (awaitable).

        The slot is given back when the request ends, or, if its work was handed to a
        worker, when that work ends (even if the client has gone away meanwhile).
        """
        counts = self._counts
        if counts.admitted >= self.capacity:
            raise Busy(f"server busy: {self.workers} worker(s) and the queue are full; retry later")
        counts.admitted += 1
        loop = asyncio.get_running_loop()
        submitted: list[Future[Any]] = []

        def release(_: Future[Any] | None = None) -> None:
            counts.admitted -= 1

        async def run(fn: Callable[..., T], *args: Any) -> T:
            future = self._executor.submit(self._counted, fn, *args)
            submitted.append(future)
            future.add_done_callback(lambda f: loop.call_soon_threadsafe(release, f))
            return await asyncio.wrap_future(future)

        try:
            yield run
        finally:
            if not submitted:
                release()

    def _counted(self, fn: Callable[..., T], *args: Any) -> T:
        counts = self._counts
        with counts.lock:
            counts.running += 1
        try:
            return fn(*args)
        finally:
            with counts.lock:
                counts.running -= 1

    def close(self) -> None:
        """Stop the threads; queued work is dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class ProgressBoard:
    """Tiles done so far per running request, under an id its client chose (the page's bar).

    An entry exists only while its request holds a pool slot, so there are never more than
    the pool's capacity.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tiles: dict[str, tuple[int, int]] = {}

    @contextlib.contextmanager
    def track(self, key: str | None) -> Iterator[TileProgress | None]:
        """Yield a ``progress(done, total)`` callback that records under ``key`` (if any)."""
        if key is None:
            yield None
            return
        with self._lock:
            if key in self._tiles:
                raise RequestProblem("progress: this id belongs to a request still running")
            self._tiles[key] = (0, 0)

        def report(done: int, total: int) -> None:
            with self._lock:
                if key in self._tiles:  # a request already ended records nothing
                    self._tiles[key] = (done, total)

        try:
            yield report
        finally:
            with self._lock:
                del self._tiles[key]

    def get(self, key: str) -> tuple[int, int] | None:
        """``(done, total)`` tiles of the running request ``key``; ``None`` if none runs."""
        with self._lock:
            return self._tiles.get(key)


class ModelPool:
    """The loaded models, the pool and the progress board; :meth:`work` is one request's job."""

    def __init__(self, models: Sequence[LoadedModel], pool: WorkerPool, quality: int) -> None:
        if not models:
            raise DerainError("no model to serve")
        self.models = {m.name: m for m in models}
        self.default_model = models[0].name
        self.pool = pool
        self.quality = quality
        self.progress = ProgressBoard()
        #: Requests dropped or stopped because their client had gone (event loop only).
        self.abandoned = 0

    def choose(self, model: str | None, precision: str | None) -> tuple[LoadedModel, Deraining]:
        """The model and front object for a request's options (HTTP 400 for unknown ones)."""
        name = model or self.default_model
        loaded = self.models.get(name)
        if loaded is None:
            raise RequestProblem(
                f"model: unknown model {name!r}; this server has {', '.join(self.models)}"
            )
        chosen = precision or loaded.precisions[0]
        if chosen not in loaded.by_precision:
            raise RequestProblem(
                f"precision: {chosen!r} is not offered for {name}; use "
                f"{', '.join(loaded.precisions)}"
            )
        return loaded, loaded.by_precision[chosen]

    def work(
        self, choice: tuple[LoadedModel, Deraining], data: bytes, name: str, probe: Probe,
        layers: bool, progress: TileProgress | None = None,
        gone: threading.Event | None = None,
    ) -> Derained:  # fmt: skip
        """Decode, derain and encode one upload (runs on a worker thread).

        Once ``gone`` is set (the client has disconnected), the work stops after the tile it
        is computing, raising :class:`ClientGone`.
        """
        t0 = time.perf_counter()
        loaded, deraining = choice

        def tile_done(done: int, total: int) -> None:
            if gone is not None and gone.is_set():
                raise ClientGone(f"{name}: the client has gone; stopped after tile {done}")
            if progress is not None:
                progress(done, total)

        image = open_frames(data, name)  # an animation: every frame, counted by tile_done
        record = loaded.record.with_frames(len(image) if isinstance(image, Animation) else 0)
        out = derain_image(deraining, image, layers=layers, progress=tile_done, record=record)
        body = out.encode(probe.write_format, self.quality)
        rain, mask = out.encode_layers()
        seconds = time.perf_counter() - t0
        return Derained(body, probe.media_type, probe.write_format, seconds, rain, mask)

    def close(self) -> None:
        self.pool.close()


def load_models(specs: Sequence[str], load: Callable[[str], Deraining]) -> list[LoadedModel]:
    """Load each model once (``load(spec)``), with a front object per precision it offers.

    The first precision of each model, its default, is the one ``load`` chose.
    """
    loaded: list[LoadedModel] = []
    for spec in specs:
        key = model_key(spec)
        if any(m.name == key for m in loaded):
            raise DerainError.about(
                spec,
                f"two models would both be called {key!r}; give the file another "
                f"name (an ONNX export: derain export MODEL -o {key}-onnx.onnx --name {key}-onnx)",
            )
        base = load(spec)
        engine = base.engine
        by_precision = {precision_name(base.dtype): base}
        # Each precision the device offers and the engine runs, the weights shared.
        for name in DEVICE_PRECISIONS.get(base.device.type, ()):
            if name not in by_precision and PRECISIONS[name] in engine.supported_dtypes:
                twin = engine.with_dtype(PRECISIONS[name])
                by_precision[name] = Deraining(twin, tile=base.tile, overlap=base.overlap)
        record = base.record.renamed(key)  # the server's paths stay private
        loaded.append(LoadedModel(key, by_precision, record))
    return loaded
