"""Batches: which file goes where, which outputs to skip or redo, and the runner.

:func:`plan_jobs` (local paths) and :func:`plan_file_system_jobs` (pyarrow file systems) turn
the inputs of a run into :class:`Job` objects before anything is written;
:func:`select_jobs` drops the outputs that exist (unless another model made them, as their
run record says) and checks every output is writable; a :class:`BatchRunner` derains and
writes them, one by one. What happens is reported through the callbacks of
:class:`BatchEvents`: ``derain run`` draws rich progress bars with them, Ray collects lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ._defaults import DEFAULT_MODEL
from .errors import (
    ImageError,
    ModelNotFoundError,
    OutputError,
    UnwritableFolder,
    UsageProblem,
    WeightsError,
    describe,
    first_line,
)
from .io.animation import ANIMATED_FORMATS, Animation
from .io.discovery import InputFile, derained_path, expand_inputs, has_glob
from .io.files import Files, LocalFiles
from .io.imaging import open_frames
from .io.suffixes import VIDEO_SUFFIXES, is_input_name, is_video_name
from .io.writing import encode_image, format_for_path, output_format
from .record import RunRecord
from .tiling import DEFAULT_OVERLAP, TileProgress, parse_tile

if TYPE_CHECKING:
    from .inference import Deraining, LayerRequest

__all__ = [
    "STDIO",
    "BatchCounts",
    "BatchEvents",
    "BatchRunner",
    "DerainedImage",
    "Job",
    "ModelOptions",
    "Plan",
    "VideoSettings",
    "derain_image",
    "plan_file_system_jobs",
    "plan_jobs",
    "select_jobs",
]

STDIO = "-"
_LAYER_SUFFIXES = ("_rain", "_mask")


#: Image suffixes FFmpeg reads as a stream of timed frames, so they may be written as videos.
GIF_SUFFIXES = frozenset({".gif"})


@dataclass(frozen=True)
class Job:
    """One image or video to derain.

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
        """Whether the job derains frame by frame into a video: a video, or an animated GIF
        written to a video name (FFmpeg reads GIF frames with their timing)."""
        if self.source is None:
            return False
        path = self.source.path
        to_video = self.target is not None and is_video_name(self.target)
        return is_video_name(path) or (to_video and path.suffix.lower() in GIF_SUFFIXES)

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
        raise OutputError.about(path, f"cannot resolve ({first_line(exc)})") from None


def _check_format(job: Job) -> None:
    if job.is_video:
        if job.target is None or not is_video_name(job.target):
            where = "stdout" if job.target is None else job.target
            known = ", ".join(sorted(VIDEO_SUFFIXES))
            raise UsageProblem.about(where, f"{job.name} is a video; write it to a {known} file")
    elif job.target is not None:
        try:
            output_format(job.target)
        except OutputError as exc:
            if is_video_name(job.target):  # an animation other than GIF into a video
                raise UsageProblem.about(
                    job.target,
                    f"only videos and GIFs become videos; write {job.name} to "
                    f"an image (its frames are kept in .gif, .webp, .png, .tiff)",
                ) from None
            raise UsageProblem(str(exc), subject=exc.subject) from None


def _stdin_plan(output: str | None, save_rain: bool) -> Plan:
    if output in (None, STDIO):
        if save_rain:
            raise UsageProblem("--save-rain: needs a file output, not stdout")
        return Plan([Job(None, None, None)], [], single=True)
    target = Path(output)
    if target.is_dir():
        raise UsageProblem.about(
            output, "is a folder; give a file name for the image read from stdin"
        )
    job = Job(None, target, _layers(target, target.stem, save_rain))
    _check_format(job)
    return Plan([job], [], True)


def _single_plan(source: Path, output: str | None, save_rain: bool) -> Plan:
    if output == STDIO:
        if save_rain:
            raise UsageProblem("--save-rain: needs a file output, not stdout")
        return Plan([Job(InputFile(source, Path(source.name)), None, None)], [], single=True)
    stem = source.stem
    if output is None:
        target = derained_path(source)
    elif Path(output).is_dir() or output.endswith(("/", os.sep)):
        target = Path(output) / source.name
    else:  # a file name: the layers are named after it (-o clean.mp4: clean_rain.mp4)
        target = Path(output)
        stem = target.stem
    job = Job(InputFile(source, Path(source.name)), target, _layers(target, stem, save_rain))
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
                str(exc) if isinstance(exc, OutputError) else f"{job.name}: {first_line(exc)}"
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
        raise UsageProblem.about(output, "output would overwrite the input; choose another -o")
    if key in seen:
        raise UsageProblem.about(output, f"both {seen[key]} and {name} would be written here")
    seen[key] = name


def _batch_plan(
    inputs: Sequence[str], output: str | None, recursive: bool, save_rain: bool
) -> Plan:
    if output == STDIO:
        raise UsageProblem("-o -: stdout takes a single input image")
    # One path that is neither a folder nor a pattern (a missing file) reads as a single image.
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir() and not has_glob(inputs[0])
    out_dir = Path(output) if output is not None else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UsageProblem.about(output, "is a file; with several inputs -o must be a folder")
    if (
        output is not None
        and out_dir is not None
        and not single
        and not out_dir.exists()
        and not output.endswith(("/", os.sep))
        and is_input_name(out_dir)
    ):
        raise UsageProblem.about(
            output,
            f"names a file, but several inputs need an output folder; "
            f"write -o {out_dir.parent / out_dir.stem}/ or derain one file at a time",
        )
    files, errors = expand_inputs(inputs, recursive, exclude=out_dir)
    jobs = []
    for f in _without_own_outputs(files):
        target = out_dir / f.relative if out_dir is not None else derained_path(f.path)
        jobs.append(Job(f, target, _layers(target, f.path.stem, save_rain)))
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
    from .io.arrow import ArrowFiles, is_uri, list_images, resolve

    in_files: Files = LocalFiles()
    in_arrow: ArrowFiles | None = None
    remote = [is_uri(spec) for spec in inputs]
    if input_filesystem is None and any(remote) and not all(remote):
        raise UsageProblem("inputs: give all of them as URIs or all as local paths")
    roots = []
    if input_filesystem is not None or any(remote):
        found = [resolve(spec, input_filesystem) for spec in inputs]
        if any(not fs.equals(found[0][0]) for fs, _ in found):
            raise UsageProblem("inputs: all must be on one file system; run one job for each")
        in_files = in_arrow = ArrowFiles(found[0][0])
        roots = [path for _, path in found]
    out_files: Files = LocalFiles()
    out_root = output
    if output_filesystem is not None or is_uri(output):
        out_fs, out_root = resolve(output, output_filesystem)
        out_files = ArrowFiles(out_fs)
    out_kind = out_files.place(Path(out_root))[0]
    if in_arrow is not None:
        same = in_files.place(Path(roots[0]))[0] == out_kind
        files, errors = list_images(in_arrow, roots, recursive, out_root if same else None)
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
            errors.append(f"{name}: cannot resolve ({first_line(exc)})")
            continue
        for out, key in keys:
            _claim(seen, key, out_files.name(out), name, key == source)
        jobs.append(job)
    return Plan(jobs, errors, single=False), in_files, out_files


@dataclass(frozen=True)
class ModelOptions:
    """The model a batch runs and its settings, as ``derain run`` takes them.

    Attributes:
        model: a model source (:class:`derain.Deraining`'s ``model``).
        device, overlap: as :class:`derain.Deraining` takes them.
        tile: a tile side, ``auto`` or ``none``, as text.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    tile: str = "auto"
    overlap: int = DEFAULT_OVERLAP
    precision: str = "auto"

    def load(self) -> Deraining:
        """The front object; a model that cannot load is named in its one-line error."""
        from .inference import Deraining

        tile = parse_tile(self.tile)
        try:
            return Deraining(
                self.model,
                device=self.device,
                dtype=self.precision,
                tile=tile,
                overlap=self.overlap,
            )
        except (ModelNotFoundError, WeightsError) as exc:  # name the model the message is about
            raise type(exc)(describe(exc, self.model)) from exc


@dataclass(frozen=True)
class VideoSettings:
    """How videos of a batch are written (see :func:`derain.io.video.derain_video`)."""

    codec: str | None = None
    crf: int | None = None
    deflicker: bool = False


@dataclass
class BatchCounts:
    """Jobs done, skipped (outputs kept) and failed."""

    done: int = 0
    skipped: int = 0
    failed: int = 0

    def summary(self) -> str:
        """``done N, skipped N, failed N``."""
        return f"done {self.done}, skipped {self.skipped}, failed {self.failed}"


class BatchEvents:
    """What a batch reports as it goes. Each method does nothing here: override those you show."""

    def skipped(self, job: Job) -> None:
        """``job``'s outputs exist and are kept."""

    def note(self, message: str) -> None:
        """A line for the user (an output redone because another model made it)."""

    def failed(self, message: str, exc: BaseException | None = None) -> None:
        """One line naming the input or output that failed; the batch goes on."""

    def started(self, job: Job) -> None:
        """``job`` is about to be derained."""

    def tiles(self, done: int, total: int) -> None:
        """``done`` of ``total`` tiles of the current image."""

    def frames(self, done: int, total: int | None) -> None:
        """``done`` frames of the current video (``total``: ``None`` when unknown)."""

    def wrote(self, job: Job) -> None:
        """``job`` finished and its outputs are written."""

    def ended(self, job: Job) -> None:
        """``job`` is over, written or failed."""


#: The rain layer and the mask are grayscale maps: always lossless PNG.
LAYER_FORMAT = "PNG"


@dataclass(frozen=True)
class DerainedImage:
    """One derained image with what its output file carries.

    Attributes:
        image: the derained picture.
        rain, mask: the layers, when asked for.
        meta: ``icc_profile``, ``exif`` (from the input) and ``made_by`` (the run record), the
            keywords :func:`derain.io.writing.encode_image` and the writers take.
    """

    image: Image.Image | Animation
    rain: Image.Image | Animation | None
    mask: Image.Image | Animation | None
    meta: dict[str, Any]

    @property
    def made_by(self) -> str:
        """The run record's text."""
        return str(self.meta["made_by"])

    def encode(self, fmt: str, quality: int) -> bytes:
        """The derained image encoded in ``fmt``, with its colour profile, EXIF and record."""
        return encode_image(self.image, fmt, quality, **self.meta)

    def encode_layers(self) -> tuple[bytes | None, bytes | None]:
        """The rain layer and the mask as PNG with the run record (``None`` where not asked)."""
        made_by = self.made_by
        rain, mask = self.rain, self.mask
        return (
            encode_image(rain, LAYER_FORMAT, made_by=made_by) if rain is not None else None,
            encode_image(mask, LAYER_FORMAT, made_by=made_by) if mask is not None else None,
        )


def derain_image(
    deraining: Deraining,
    image: Image.Image | Animation,
    *,
    layers: LayerRequest = False,
    progress: TileProgress | None = None,
    record: RunRecord | None = None,
) -> DerainedImage:
    """Derain a decoded image and gather what its output carries (the decode → derain →
    encode step of ``derain run``, Ray and the server).

    Args:
        deraining: the model.
        image: the input, as :func:`derain.io.imaging.open_frames` read it (an animation:
            every frame, ``progress`` then counting frames).
        layers: also compute the rain layer and mask (``True``: raw, ``"view"``: scaled).
        progress: called as ``progress(done, total)`` after each tile.
        record: the run record to write (default: ``deraining.record``).
    """
    made_by = (record or deraining.record).format()
    if isinstance(image, Animation):
        return _derain_frames(deraining, image, layers, progress, made_by)
    meta = {"icc_profile": image.info.get("icc_profile"), "exif": image.getexif()}
    meta["made_by"] = made_by
    if not layers:
        return DerainedImage(deraining.run(image, progress=progress), None, None, meta)
    result = deraining.run(image, return_layers=layers, progress=progress)
    return DerainedImage(result.image, result.rain, result.mask, meta)


def _derain_frames(
    deraining: Deraining,
    animation: Animation,
    layers: LayerRequest,
    progress: TileProgress | None,
    made_by: str,
) -> DerainedImage:
    """Every frame of ``animation`` derained (``progress`` counts frames, not tiles)."""
    images, rains, masks = [], [], []
    for done, frame in enumerate(animation.frames, start=1):
        if layers:
            result = deraining.run(frame, return_layers=layers)
            images.append(result.image)
            rains.append(result.rain)
            masks.append(result.mask)
        else:
            images.append(deraining.run(frame))
        if progress is not None:
            progress(done, len(animation))
    meta = {k: animation.info.get(k) for k in ("icc_profile", "exif")}
    meta["made_by"] = made_by
    if not layers:
        return DerainedImage(animation.with_frames(images), None, None, meta)
    rain, mask = animation.with_frames(rains), animation.with_frames(masks)
    return DerainedImage(animation.with_frames(images), rain, mask, meta)


def check_holds_frames(animation: Animation, name: str, target: Path) -> None:
    """Refuse to write an animation into a format that holds one picture (JPEG, BMP…).

    Raises:
        OutputError: one line naming the input, its frame count and the formats that keep
            every frame, with an ``-o`` that would.
    """
    fmt = output_format(target)
    if fmt in ANIMATED_FORMATS:
        return
    keep = target.with_suffix(ANIMATED_FORMATS.get(animation.format, ".gif"))
    video = f", or -o {target.with_suffix('.mp4')} for a video" if animation.format == "GIF" else ""
    raise OutputError.about(
        name,
        f"animated image of {len(animation)} frames, and {target} ({fmt}) holds one "
        f"picture: write -o {keep} to keep every frame (GIF, WebP, PNG and TIFF hold "
        f"frames){video}",
    )


def _read_stdin() -> Image.Image | Animation:
    data = sys.stdin.buffer.read()
    if not data:
        raise ImageError("<stdin>: no image data on standard input")
    return open_frames(data, "<stdin>")


class BatchRunner:
    """Runs jobs one by one; the model is loaded only when a job needs it.

    Args:
        load: builds the model (called once, on first need), e.g. :meth:`ModelOptions.load`.
        quality: JPEG/WebP quality of the outputs.
        video: how videos are written.
        inputs, outputs: where images are read and written (default: local paths; a Ray
            job's may be on a pyarrow file system).
        events: what the batch reports (default: nothing).
    """

    def __init__(
        self,
        load: Callable[[], Deraining],
        *,
        quality: int = 95,
        video: VideoSettings | None = None,
        inputs: Files | None = None,
        outputs: Files | None = None,
        events: BatchEvents | None = None,
    ) -> None:
        self._load = load
        self.quality = quality
        self.video = video or VideoSettings()
        self.inputs: Files = LocalFiles() if inputs is None else inputs
        self.outputs: Files = LocalFiles() if outputs is None else outputs
        self.events = events or BatchEvents()
        self._deraining: Deraining | None = None

    def deraining(self) -> Deraining:
        """The model, loaded on first call."""
        if self._deraining is None:
            self._deraining = self._load()
        return self._deraining

    def _process_video(self, job: Job) -> None:
        from .io.video import Deflicker

        assert job.source is not None and job.target is not None
        self.deraining().run_video(
            job.source.path,
            job.target,
            rain=job.layers[0] if job.layers else None,
            codec=self.video.codec,
            crf=self.video.crf,
            deflicker=Deflicker() if self.video.deflicker else None,
            progress=self.events.frames,
            record=self.record_for(job),
        )

    def record_for(self, job: Job, frames: int = 0) -> RunRecord:
        """The run record of ``job``'s outputs: the model's, with the input's identity and,
        for an animated input, its number of frames."""
        record = self.deraining().record
        if job.source is None:
            return record
        return record.for_input(self.inputs.identity(job.source.path), frames)

    def process(self, job: Job) -> None:
        """Derain ``job`` and write its outputs (atomically)."""
        deraining = self.deraining()
        self.events.started(job)
        if job.is_video:
            self._process_video(job)
            return
        image = self.inputs.open_frames(job.source.path) if job.source else _read_stdin()
        frames = len(image) if isinstance(image, Animation) else 0
        if isinstance(image, Animation) and job.target is not None:
            check_holds_frames(image, job.name, job.target)
        layers: LayerRequest = "view" if job.layers is not None else False
        progress = self.events.frames if frames else self.events.tiles
        record = self.record_for(job, frames)
        out = derain_image(deraining, image, layers=layers, progress=progress, record=record)
        if job.target is None:
            own = image.format if image.format in Image.SAVE else None
            sys.stdout.buffer.write(out.encode(own or "PNG", self.quality))
            sys.stdout.buffer.flush()
            return
        write = self.outputs.write_image
        write(out.image, job.target, self.quality, **out.meta)
        if job.layers is not None and out.rain is not None and out.mask is not None:
            write(out.rain, job.layers[0], format=LAYER_FORMAT, made_by=out.made_by)
            write(out.mask, job.layers[1], format=LAYER_FORMAT, made_by=out.made_by)

    def stale_reason(self, job: Job) -> str | None:
        """Why existing outputs must be redone: other weights or another input made them, as
        :meth:`RunRecord.why_redo` tells (``None``: keep them).

        Outputs with no record at all (BMP, PPM) are kept.
        """
        assert job.target is not None
        recorded = self.outputs.read_made_by(job.target)
        if recorded is None:
            return None
        # Only a format that holds frames is asked how many (a header read; for a remote
        # file the whole file), so a folder of JPEGs costs no extra read on a rerun.
        source = None if job.source is None else job.source.path
        animated = source is not None and format_for_path(source) in ANIMATED_FORMATS
        frames = self.inputs.frame_count(source) if source is not None and animated else 0
        reason = self.record_for(job, frames).why_redo(RunRecord.parse(recorded))
        return None if reason is None else f"redoing {job.target}: {reason} ({recorded})"

    def run(self, jobs: Sequence[Job], counts: BatchCounts) -> None:
        """Run ``jobs`` in order, counting them; a file that fails is reported and skipped.

        Raises:
            DerainError: the model cannot load (that stops the whole run).
        """
        for job in jobs:
            self.deraining()
            try:
                self.process(job)
                counts.done += 1
                self.events.wrote(job)
            except Exception as exc:  # keep going: one bad file must not stop a batch
                counts.failed += 1
                self.events.failed(describe(exc, job.name), exc)
            self.events.ended(job)


def select_jobs(
    jobs: Sequence[Job], runner: BatchRunner, overwrite: bool, counts: BatchCounts
) -> list[Job]:
    """The jobs to run: outputs that exist are skipped (unless another model made them, as
    their run record tells), and every output is checked to be writable before any image is
    derained. Reported through ``runner.events``; counted in ``counts``.

    Raises:
        OutputError: an output folder cannot be written (one line; the batch stops there,
            since every output below it would fail alike).
    """
    todo = []
    events = runner.events
    exists = runner.outputs.exists
    for job in jobs:
        if job.target is not None and not overwrite and all(exists(p) for p in job.outputs()):
            reason = runner.stale_reason(job)
            if reason is None:
                counts.skipped += 1
                events.skipped(job)
                continue
            events.note(reason)
        try:
            for out in job.outputs():
                runner.outputs.check_writable(out)
        except UnwritableFolder as exc:  # every output below it would fail alike: stop once
            raise OutputError(
                f"{describe(exc)}; stopped: no output can be written below {exc.folder}",
                subject=exc.subject,
            ) from None
        except OutputError as exc:
            counts.failed += 1
            events.failed(describe(exc, job.name), exc)
            continue
        todo.append(job)
    return todo
