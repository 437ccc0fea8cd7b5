"""Which file goes where: turning ``derain run``'s arguments into a list of jobs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..io_files import (
    Files,
    InputFile,
    LocalFiles,
    derained_path,
    expand_inputs,
    has_glob,
    output_format,
)
from ..video import VIDEO_SUFFIXES, is_video_name
from .common import UsageProblem

STDIO = "-"
_LAYER_SUFFIXES = ("_rain", "_mask")


@dataclass(frozen=True)
class Job:
    """One image to derain.

    Attributes:
        source: the input file; ``None`` reads stdin.
        target: the output file; ``None`` writes stdout.
        layers: where ``--save-rain`` writes the rain layer and the mask (for a video: the
            rain video), if asked.
    """

    source: InputFile | None
    target: Path | None
    layers: tuple[Path, ...] | None

    @property
    def name(self) -> str:
        """The input as shown in messages."""
        return str(self.source.path) if self.source else "<stdin>"

    @property
    def is_video(self) -> bool:
        """Whether the input is a video (derained frame by frame into a video)."""
        return self.source is not None and is_video_name(self.source.path)

    def outputs(self) -> list[Path]:
        """Every file this job writes."""
        return [p for p in (self.target, *(self.layers or ())) if p is not None]


@dataclass(frozen=True)
class Plan:
    """The jobs of one command, and the arguments that yielded no image (one line each)."""

    jobs: list[Job]
    errors: list[str]
    single: bool


def _layers(target: Path, stem: str, save_rain: bool) -> tuple[Path, ...] | None:
    if not save_rain:
        return None
    folder = target.parent
    if is_video_name(target):  # a video's rain layer is a second video of the same kind
        return (folder / f"{stem}_rain{target.suffix}",)
    return folder / f"{stem}_rain.png", folder / f"{stem}_mask.png"


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return b.exists() and os.path.samefile(a, b)


def _resolved(path: Path) -> Path:
    """``path`` with links resolved; a symlink loop is an error of that file alone."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: Python < 3.13 on a link loop
        raise OutputError(f"{path}: cannot resolve ({_first(exc)})") from None


def _first(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _check_format(job: Job) -> None:
    if job.is_video:
        if job.target is None or not is_video_name(job.target):
            where = "stdout" if job.target is None else job.target
            known = ", ".join(sorted(VIDEO_SUFFIXES))
            raise UsageProblem(f"{where}: {job.name} is a video; write it to a {known} file")
    elif job.target is not None:
        try:
            output_format(job.target)
        except OutputError as exc:
            raise UsageProblem(str(exc)) from None


def _stdin_plan(output: str | None, save_rain: bool) -> Plan:
    if output in (None, STDIO):
        if save_rain:
            raise UsageProblem("--save-rain: needs a file output, not stdout")
        return Plan([Job(None, None, None)], [], single=True)
    target = Path(output)
    if target.is_dir():
        raise UsageProblem(f"{output}: is a folder; give a file name for the image read from stdin")
    job = Job(None, target, _layers(target, target.stem, save_rain))
    _check_format(job)
    return Plan([job], [], True)


def _single_plan(source: Path, output: str | None, save_rain: bool) -> Plan:
    if output == STDIO:
        if save_rain:
            raise UsageProblem("--save-rain: needs a file output, not stdout")
        return Plan([Job(InputFile(source, Path(source.name)), None, None)], [], single=True)
    if output is None:
        target = derained_path(source)
    elif Path(output).is_dir() or output.endswith(("/", os.sep)):
        target = Path(output) / source.name
    else:
        target = Path(output)
    job = Job(InputFile(source, Path(source.name)), target, _layers(target, source.stem, save_rain))
    return Plan([job], [], single=True)


def _is_own_output(path: Path, stems: set[str]) -> bool:
    """An output of an earlier run written beside its input (so reruns do not derain it)."""
    if path.stem.endswith("_derained"):
        return True
    layer = path.suffix.lower() == ".png" or is_video_name(path)
    return layer and any(
        path.stem.endswith(s) and path.stem.removesuffix(s) in stems for s in _LAYER_SUFFIXES
    )


def _without_own_outputs(files: list[InputFile]) -> list[InputFile]:
    """``files`` less the outputs of earlier runs beside their inputs (never inputs, with or
    without -o)."""
    stems: dict[Path, set[str]] = {}
    for f in files:
        stems.setdefault(f.path.parent, set()).add(f.path.stem)
    return [f for f in files if not _is_own_output(f.path, stems[f.path.parent])]


def plan_jobs(inputs: Sequence[str], output: str | None, recursive: bool, save_rain: bool) -> Plan:
    """Work out every (input, output) pair before anything is written.

    Raises:
        UsageProblem: contradictory arguments, or an output that would overwrite an input.
    """
    if STDIO in inputs:
        if len(inputs) > 1:
            raise UsageProblem("-: stdin cannot be combined with other inputs")
        return _stdin_plan(output, save_rain)
    if len(inputs) == 1 and Path(inputs[0]).is_file():
        plan = _single_plan(Path(inputs[0]), output, save_rain)
    else:
        plan = _batch_plan(inputs, output, recursive, save_rain)
    seen: dict[Path, str] = {}
    jobs: list[Job] = []
    errors = list(plan.errors)
    for job in plan.jobs:
        assert job.source is not None
        _check_format(job)
        try:
            keys = [
                (out, _resolved(out), _same_file(job.source.path, out)) for out in job.outputs()
            ]
        except (OutputError, OSError, RuntimeError) as exc:  # this file only; the batch goes on
            errors.append(
                str(exc) if isinstance(exc, OutputError) else f"{job.name}: {_first(exc)}"
            )
            continue
        for out, key, clash in keys:
            _claim(seen, key, str(out), job.name, clash)
        jobs.append(job)
    return Plan(jobs, errors, plan.single)


def _claim(seen: dict[Any, str], key: Any, output: str, name: str, clash: bool) -> None:
    """Record that input ``name`` writes ``output`` (compared as ``key``).

    Raises:
        UsageProblem: the output is the input itself (``clash``), or another input's output.
    """
    if clash:
        raise UsageProblem(f"{output}: output would overwrite the input; choose another -o")
    if key in seen:
        raise UsageProblem(f"{output}: both {seen[key]} and {name} would be written here")
    seen[key] = name


def _batch_plan(
    inputs: Sequence[str], output: str | None, recursive: bool, save_rain: bool
) -> Plan:
    if output == STDIO:
        raise UsageProblem("-o -: stdout takes a single input image")
    out_dir = Path(output) if output is not None else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UsageProblem(f"{output}: is a file; with several inputs -o must be a folder")
    files, errors = expand_inputs(inputs, recursive, exclude=out_dir)
    jobs = []
    for f in _without_own_outputs(files):
        target = out_dir / f.relative if out_dir is not None else derained_path(f.path)
        jobs.append(Job(f, target, _layers(target, f.path.stem, save_rain)))
    # One path that is neither a folder nor a pattern (a missing file) reads as a single image.
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir() and not has_glob(inputs[0])
    return Plan(jobs, errors, single=single)


def plan_file_system_jobs(
    inputs: Sequence[str],
    output: str,
    recursive: bool,
    save_rain: bool,
    input_filesystem: Any = None,
    output_filesystem: Any = None,
) -> tuple[Plan, Files, Files]:
    """:func:`plan_jobs` for inputs or an output folder on pyarrow file systems (URIs).

    The same output names (the output folder mirrors the input tree), outputs of earlier runs
    are never inputs, no output may overwrite an input and no two inputs may share an output.
    A side given as a local path stays local (globs included).

    Args:
        inputs: folders or files: all URIs (``s3://bucket/in``), all local paths, or paths in
            ``input_filesystem``.
        output: the output folder: a URI, a local path, or a path in ``output_filesystem``.
        recursive, save_rain: as :func:`plan_jobs`.
        input_filesystem, output_filesystem: :class:`pyarrow.fs.FileSystem` objects to use
            instead of the URIs' schemes.

    Returns:
        The plan, and where its inputs are read and its outputs written.

    Raises:
        UsageProblem: inputs on several file systems, a mix of URIs and local paths, or an
            output that would overwrite an input.
        DerainError: a file system that cannot be opened.
    """
    from ..arrow_files import ArrowFiles, is_uri, list_images, resolve

    in_files: Files = LocalFiles()
    remote = [is_uri(spec) for spec in inputs]
    if input_filesystem is None and any(remote) and not all(remote):
        raise UsageProblem("inputs: give all of them as URIs or all as local paths")
    roots = []
    if input_filesystem is not None or any(remote):
        found = [resolve(spec, input_filesystem) for spec in inputs]
        if any(not fs.equals(found[0][0]) for fs, _ in found):
            raise UsageProblem("inputs: all must be on one file system; run one job for each")
        in_files, roots = ArrowFiles(found[0][0]), [path for _, path in found]
    out_files: Files = LocalFiles()
    out_root = output
    if output_filesystem is not None or is_uri(output):
        out_fs, out_root = resolve(output, output_filesystem)
        out_files = ArrowFiles(out_fs)
    out_kind = out_files.place(Path(out_root))[0]
    if roots:
        same = in_files.place(Path(roots[0]))[0] == out_kind
        files, errors = list_images(in_files, roots, recursive, out_root if same else None)
    else:
        local_out = Path(out_root) if out_kind == "local" else None
        files, errors = expand_inputs(inputs, recursive, local_out)
    seen: dict[tuple[str, str], str] = {}
    jobs: list[Job] = []
    for f in _without_own_outputs(files):
        target = Path(out_root) / f.relative
        job = Job(f, target, _layers(target, f.path.stem, save_rain))
        name = in_files.name(f.path)
        if job.is_video:
            errors.append(f"{name}: videos are derained only from and to local folders")
            continue
        _check_format(job)
        try:
            source = in_files.place(f.path)
            keys = [(out, out_files.place(out)) for out in job.outputs()]
        except (OSError, RuntimeError) as exc:  # RuntimeError: Python < 3.13 on a link loop
            errors.append(f"{name}: cannot resolve ({_first(exc)})")
            continue
        for out, key in keys:
            _claim(seen, key, out_files.name(out), name, key == source)
        jobs.append(job)
    return Plan(jobs, errors, single=False), in_files, out_files
