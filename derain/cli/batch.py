"""Which file goes where: turning ``derain run``'s arguments into a list of jobs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputError
from ..io_files import InputFile, derained_path, expand_inputs, has_glob, output_format
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
    seen: dict[Path, Job] = {}
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
            if clash:
                raise UsageProblem(f"{out}: output would overwrite the input; choose another -o")
            if key in seen:
                raise UsageProblem(
                    f"{out}: both {seen[key].name} and {job.name} would be written here"
                )
            seen[key] = job
        jobs.append(job)
    return Plan(jobs, errors, plan.single)


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
    # Outputs of earlier runs beside their inputs are never inputs, with or without -o.
    stems: dict[Path, set[str]] = {}
    for f in files:
        stems.setdefault(f.path.parent, set()).add(f.path.stem)
    files = [f for f in files if not _is_own_output(f.path, stems[f.path.parent])]
    for f in files:
        target = out_dir / f.relative if out_dir is not None else derained_path(f.path)
        jobs.append(Job(f, target, _layers(target, f.path.stem, save_rain)))
    # One path that is neither a folder nor a pattern (a missing file) reads as a single image.
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir() and not has_glob(inputs[0])
    return Plan(jobs, errors, single=single)
