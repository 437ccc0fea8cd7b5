"""Batch deraining on a Ray cluster, with Ray Data as the engine.

The driver plans and selects the jobs with the code ``derain run`` uses
(:mod:`derain.batch`: same output names, same refusal to overwrite an input, outputs that
exist are skipped unless another model made them, outputs checked writable first). The rest
become a Ray dataset of (input, output) rows, one row per block, mapped by a pool of actors
that each load the model once and derain one image per call (an image is already cut into
tiles by the tile plan, so one image is the natural batch). Each actor opens, derains and
writes its images with the batch runner (:class:`derain.batch.BatchRunner`), atomically
(:mod:`derain.atomic`), so a worker that dies leaves either a complete output or none; Ray
Data restarts the actor and retries its task. A file that fails comes back as a one-line
error and the job goes on. Inputs and outputs may also be on any file system pyarrow opens
(``s3://``, ``gs://``, ``hdfs://``, ``file://``): see :mod:`derain.io.arrow`.

Needs ``pip install "derain[ray]"``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._defaults import DEFAULT_MODEL
from .batch import (
    BatchCounts,
    BatchEvents,
    BatchRunner,
    Job,
    ModelOptions,
    Plan,
    plan_file_system_jobs,
    plan_jobs,
    select_jobs,
)
from .errors import DerainError, describe, first_line
from .io.discovery import InputFile
from .io.files import Files
from .tiling import DEFAULT_OVERLAP

__all__ = ["RayInterrupted", "RayReport", "RaySettings", "derain_with_ray", "map_deraining"]

_INSTALL_HINT = 'pip install "derain[ray]"'
#: Columns of the rows :func:`map_deraining` reads.
ROW_COLUMNS = ("source", "relative", "target", "layers")
#: Joins the layer outputs of a job in the ``layers`` column.
LAYER_SEPARATOR = "\n"
#: The first Ray that takes the actor pool's size as ``compute=`` (see :func:`_pool_size`).
_COMPUTE_SINCE = (2, 51)


@dataclass
class RayReport:
    """What a Ray run did.

    Attributes:
        done: images derained and written.
        skipped: images whose outputs existed already.
        errors: one line per input that failed (planning or deraining), naming the file.
        seconds: wall time from planning to the last result.
        workers: actors in the pool.
        notes: other lines for the user (outputs redone because another model made them).
    """

    done: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0
    notes: list[str] = field(default_factory=list)
    #: Inputs sent to the workers whose result never came (an interrupted run).
    not_done: int = 0

    @property
    def failed(self) -> int:
        """Inputs that failed."""
        return len(self.errors)

    def summary(self) -> str:
        """``done N, skipped N, failed N``, as ``derain run`` says it."""
        return BatchCounts(self.done, self.skipped, self.failed).summary()


class RayInterrupted(KeyboardInterrupt):
    """Ctrl-C during a Ray run; :attr:`report` holds what was done before it.

    Outputs are written atomically, so each one is complete or absent; the same call again
    finishes the job.
    """

    def __init__(self, report: RayReport) -> None:
        super().__init__("interrupted")
        self.report = report


@dataclass(frozen=True)
class RaySettings:
    """What each actor runs: the model and settings of ``derain run``, and the pool's size.

    Attributes:
        model, device, tile, overlap, precision: as ``derain run`` takes them.
        quality: JPEG/WebP quality of the outputs.
        workers: actors in the pool (default: one per GPU, else one per ``threads`` CPUs).
        threads: torch threads and CPUs per CPU actor (default 1).
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    tile: str = "auto"
    overlap: int = DEFAULT_OVERLAP
    precision: str = "auto"
    quality: int = 95
    workers: int | None = None
    threads: int | None = None

    def model_options(self) -> ModelOptions:
        """The model and its settings, as the batch runner loads them."""
        return ModelOptions(self.model, self.device, self.tile, self.overlap, self.precision)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DerainError(f"--ray needs Ray Data: {_INSTALL_HINT}") from None
    return ray


def _runner(
    settings: RaySettings,
    inputs: Files | None,
    outputs: Files | None,
    events: BatchEvents | None = None,
) -> BatchRunner:
    """The batch runner with the settings' model (loaded on first use)."""
    load = settings.model_options().load
    return BatchRunner(
        load, quality=settings.quality, inputs=inputs, outputs=outputs, events=events
    )


class _Lines(BatchEvents):
    """What the job selection reports, passed on to the report and the callback."""

    def __init__(self, report: RayReport, on_error: Callable[[str], None] | None) -> None:
        self.report = report
        self.on_error = on_error

    def failed(self, message: str, exc: BaseException | None = None) -> None:
        self.report.errors.append(message)
        if self.on_error is not None:
            self.on_error(message)

    def note(self, message: str) -> None:
        self.report.notes.append(message)


class _DerainActor:
    """One model per actor, loaded once; derains and writes each row it is given."""

    def __init__(self, settings: RaySettings, inputs: Files | None, outputs: Files | None) -> None:
        import torch

        torch.set_num_threads(settings.threads or 1)
        self.runner = _runner(settings, inputs, outputs)
        self.runner.deraining()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        names, errors = [], []
        columns = (batch[c] for c in ROW_COLUMNS)
        for source, relative, target, joined in zip(*columns, strict=True):
            layers = tuple(Path(p) for p in joined.split(LAYER_SEPARATOR)) if joined else None
            job = Job(InputFile(Path(source), Path(relative)), Path(target), layers)
            try:
                self.runner.process(job)
                errors.append("")
            except Exception as exc:  # one bad file must not stop the job
                errors.append(describe(exc, self.runner.inputs.name(Path(source))))
            names.append(str(source))
        return {"source": names, "error": errors}


def _pool(ray: Any, settings: RaySettings) -> tuple[int, dict[str, float]]:
    """How many actors, and what each one reserves: a GPU each if the cluster has GPUs."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return settings.workers or gpus, {"num_gpus": 1.0}
    per_actor = settings.threads or 1
    count = settings.workers or max(1, int(resources.get("CPU", 1)) // per_actor)
    return count, {"num_cpus": per_actor}


def _pool_size(ray: Any, count: int) -> dict[str, Any]:
    """The ``map_batches`` argument for a pool of ``count`` actors, in the form this Ray wants.

    Ray 2.51 deprecated ``concurrency=`` for ``compute=ActorPoolStrategy(size=...)``, and Ray
    2.9 to 2.50 logged the opposite deprecation; each version gets the form it does not warn
    about.
    """
    version = tuple(int(part) for part in re.findall(r"\d+", ray.__version__)[:2])
    if version >= _COMPUTE_SINCE:
        return {"compute": ray.data.ActorPoolStrategy(size=count)}
    return {"concurrency": count}


def map_deraining(
    dataset: Any,
    settings: RaySettings | None = None,
    *,
    input_filesystem: Any = None,
    output_filesystem: Any = None,
) -> Any:
    """Map :class:`derain.Deraining` over a Ray dataset of jobs, one model per actor.

    Args:
        dataset: a ``ray.data.Dataset`` with the string columns ``source`` (input file),
            ``relative`` (its name under the input root), ``target`` (output file) and
            ``layers`` (``--save-rain`` outputs joined by newlines, or an empty string).
        settings: the model, its settings and the pool (default: :class:`RaySettings`).
        input_filesystem, output_filesystem: :class:`pyarrow.fs.FileSystem` objects the
            ``source`` and the ``target``/``layers`` paths are in (default: local paths).

    Returns:
        A lazy dataset with one row per input: ``source`` and ``error`` (empty when it worked).
    """
    from .io.arrow import ArrowFiles

    inputs = ArrowFiles(input_filesystem) if input_filesystem is not None else None
    outputs = ArrowFiles(output_filesystem) if output_filesystem is not None else None
    return _map(_import_ray(), dataset, settings or RaySettings(), inputs, outputs)


def _map(
    ray: Any, dataset: Any, settings: RaySettings, inputs: Files | None, outputs: Files | None
) -> Any:
    count, reserve = _pool(ray, settings)
    return dataset.map_batches(
        _DerainActor,
        fn_constructor_kwargs={"settings": settings, "inputs": inputs, "outputs": outputs},
        batch_size=1,
        batch_format="numpy",
        **_pool_size(ray, count),
        **reserve,
    )


def _rows(jobs: Sequence[Any]) -> list[dict[str, str]]:
    return [
        {
            "source": str(job.source.path),
            "relative": str(job.source.relative),
            "target": str(job.target),
            "layers": LAYER_SEPARATOR.join(str(p) for p in job.layers or ()),
        }
        for job in jobs
    ]


def derain_with_ray(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    settings: RaySettings | None = None,
    address: str | None = None,
    recursive: bool = False,
    overwrite: bool = False,
    save_rain: bool = False,
    input_filesystem: Any = None,
    output_filesystem: Any = None,
    on_error: Callable[[str], None] | None = None,
    quiet: bool = False,
    on_wrote: Callable[[str], None] | None = None,
) -> RayReport:
    """Derain folders, globs or files into ``output`` on a Ray cluster.

    Args:
        inputs: what ``derain run`` takes (files, folders, globs), or folders and files on a
            pyarrow file system: URIs (``s3://bucket/photos``, ``gs://...``, ``file://...``)
            or paths in ``input_filesystem``.
        output: the output folder (a local path, a URI, or a path in ``output_filesystem``);
            the input tree is mirrored in it.
        settings: the model, its settings and the pool (default: :class:`RaySettings`).
        address: a Ray cluster (``ray://host:10001``, ``host:6379`` or ``auto``); ``None``
            uses the Ray this process is connected to, or starts a local one for the call.
        recursive, overwrite, save_rain: as ``derain run`` takes them.
        input_filesystem, output_filesystem: :class:`pyarrow.fs.FileSystem` objects (an S3
            file system with its own endpoint or keys, an fsspec one in
            :class:`pyarrow.fs.PyFileSystem`) to use instead of a URI's scheme. They are
            pickled to the workers, so each must reach the same files from every machine.
        on_error: called with each error line as it happens.
        quiet: Ray's own logs (Python and C++) show errors only, not warnings; for a Ray
            this call starts.
        on_wrote: called with each output written (the derained file), as its result comes.

    Returns:
        A :class:`RayReport`; images that failed are in ``errors``, not raised.

    Raises:
        RayInterrupted: Ctrl-C (a ``KeyboardInterrupt``) with the report so far; the Ray
            started for the call is shut down.
        DerainError: Ray is not installed or cannot be reached, a file system cannot be
            opened, or the arguments contradict each other (as in ``derain run``).
    """
    settings = settings or RaySettings()
    start = time.perf_counter()
    specs = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    plan, in_files, out_files = _plan(
        [os.fspath(s) for s in specs],
        os.fspath(output),
        recursive,
        save_rain,
        input_filesystem,
        output_filesystem,
    )
    report = RayReport()
    lines = _Lines(report, on_error)
    for line in plan.errors:
        lines.failed(line)
    todo = _todo(plan.jobs, settings, in_files, out_files, lines, overwrite)
    if todo:
        ray = _import_ray()
        with _connected(ray, address, quiet):
            report.workers = _pool(ray, settings)[0]
            dataset = ray.data.from_items(_rows(todo), override_num_blocks=len(todo))
            results = _map(ray, dataset, settings, in_files, out_files)
            _collect(results, todo, lines, on_wrote, start)
    report.seconds = time.perf_counter() - start
    return report


def _plan(
    specs: list[str],
    out: str,
    recursive: bool,
    save_rain: bool,
    input_filesystem: Any,
    output_filesystem: Any,
) -> tuple[Plan, Files | None, Files | None]:
    """The jobs (and planning errors), with the file systems of the inputs and outputs.

    Local paths are planned as ``derain run`` plans them, into a folder even for one input
    file; URIs or given file systems through pyarrow (``None``: local files).
    """
    from .io.arrow import is_uri

    given = input_filesystem is not None or output_filesystem is not None
    if given or is_uri(out) or any(is_uri(s) for s in specs):
        return plan_file_system_jobs(
            specs, out, recursive, save_rain, input_filesystem, output_filesystem
        )
    if not out.endswith(("/", os.sep)) and not Path(out).is_dir():
        out += os.sep  # always a folder, even for one input file
    return plan_jobs(specs, out, recursive, save_rain), None, None


def _todo(
    jobs: Sequence[Job],
    settings: RaySettings,
    in_files: Files | None,
    out_files: Files | None,
    lines: _Lines,
    overwrite: bool,
) -> list[Job]:
    """The jobs left to run (outputs that exist are skipped, and counted in the report)."""
    counts = BatchCounts()
    # The driver loads the model only if outputs exist (to see which model made them).
    runner = _runner(settings, in_files, out_files, lines)
    todo = select_jobs(jobs, runner, overwrite, counts)
    lines.report.skipped = counts.skipped
    return todo


def _collect(
    results: Any,
    todo: Sequence[Job],
    lines: _Lines,
    on_wrote: Callable[[str], None] | None,
    start: float,
) -> None:
    """Count each result as it comes into the report; Ctrl-C raises :class:`RayInterrupted`."""
    report = lines.report
    targets = {str(job.source.path): str(job.target) for job in todo if job.source}
    ended = 0
    try:
        for row in results.iter_rows():
            ended += 1
            if row["error"]:
                lines.failed(row["error"])
                continue
            report.done += 1
            if on_wrote is not None:
                on_wrote(targets.get(row["source"], row["source"]))
    except KeyboardInterrupt:
        report.not_done = len(todo) - ended
        report.seconds = time.perf_counter() - start
        raise RayInterrupted(report) from None


#: The variable Ray Data reads its loggers' level from, each time a dataset runs.
_RAY_DATA_LOG_LEVEL = "RAY_DATA_LOG_LEVEL"


@contextlib.contextmanager
def _connected(ray: Any, address: str | None, quiet: bool = False) -> Iterator[None]:
    """Connect to ``address`` (or start a local Ray) unless connected; disconnect after.

    Ray's Python loggers show warnings (Ray Data's progress INFO lines are the command's
    job), or errors only when ``quiet``. Ray's C++ core writes to the process's stderr
    whatever these say: ``derain --ray -q`` silences that file descriptor itself.
    """
    if ray.is_initialized():
        yield
        return
    level = logging.ERROR if quiet else logging.WARNING
    loggers = [logging.getLogger(name) for name in ("ray", "ray.data")]
    levels = [lg.level for lg in loggers]
    saved = os.environ.get(_RAY_DATA_LOG_LEVEL)
    os.environ[_RAY_DATA_LOG_LEVEL] = logging.getLevelName(level)
    # With no address (and none in RAY_ADDRESS) ray.init starts a Ray for this call alone,
    # whose session folder (/tmp/ray/session_*: logs, sockets) goes when the call ends.
    started = address is None and not os.environ.get("RAY_ADDRESS")
    try:
        context = ray.init(
            address=address,
            include_dashboard=False,
            logging_level=level,
            configure_logging=True,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        _restore_env(_RAY_DATA_LOG_LEVEL, saved)
        where = address or "local"
        raise DerainError(f"Ray at {where}: cannot connect ({first_line(exc)})") from None
    session = getattr(context, "address_info", {}).get("session_dir") if started else None
    try:
        for lg in loggers:  # after ray.init and Ray Data's import, which set their own
            lg.setLevel(level)
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield
    finally:
        ray.shutdown()
        _restore_env(_RAY_DATA_LOG_LEVEL, saved)
        for lg, old_level in zip(loggers, levels, strict=True):
            lg.setLevel(old_level)
        if session:
            _remove_session(Path(session))


def _restore_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _remove_session(session: Path) -> None:
    """Remove the session folder of a Ray this process started, and its ``session_latest``."""
    latest = session.parent / "session_latest"
    if latest.is_symlink() and latest.resolve() == session.resolve():
        latest.unlink(missing_ok=True)
    shutil.rmtree(session, ignore_errors=True)
