"""``derain run`` (also ``derain IMAGE``): derain files, folders, globs or a pipe."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .._defaults import DEFAULT_MODEL
from ..batch import (
    STDIO,
    BatchCounts,
    BatchEvents,
    BatchRunner,
    Job,
    ModelOptions,
    Plan,
    VideoSettings,
    plan_jobs,
    select_jobs,
)
from ..io.arrow import is_uri
from ..io.video import is_video_name
from ..tiling import DEFAULT_OVERLAP
from . import LOCAL_RAY
from .common import (
    DebugOpt,
    DeviceOpt,
    Fp32Opt,
    MaxPixelsOpt,
    ModelOpt,
    OverlapOpt,
    PlainUsage,
    PrecisionOpt,
    QuietOpt,
    Reporter,
    TileOpt,
    UsageProblem,
    check_model_options,
    command,
    parse_precision,
)

HELP = """Derain images: files, folders (-r to recurse), glob patterns, or - for a pipe.

Without -o, IMAGE becomes IMAGE_derained.EXT beside it; with several inputs, -o is a folder
that mirrors the input tree. Existing outputs are skipped unless --overwrite, so rerunning an
interrupted command finishes the job. `derain IMAGE` is short for `derain run IMAGE`.
"""


class _Bars(BatchEvents):
    """The batch's events as rich bars (files, and the tiles or frames of the current one)
    and lines on stderr."""

    def __init__(self, reporter: Reporter, progress: Progress, lines: bool) -> None:
        self.reporter = reporter
        self.progress = progress
        #: One line per file where no bar is drawn (a log, CI) and for a single image.
        self.lines = lines
        self.files = progress.add_task("files", total=None)
        self.current = progress.add_task("tiles", visible=False, total=None)  # below the files
        self.ended_jobs = 0

    def skipped(self, job: Job) -> None:
        if self.lines:
            self.reporter.info(f"skipped {job.target}: it exists (use --overwrite)")

    def note(self, message: str) -> None:
        self.reporter.info(message)

    def failed(self, message: str, exc: BaseException | None = None) -> None:
        self.reporter.error(message, exc)

    def started(self, job: Job) -> None:
        name = f"  {job.name} (frames)" if job.is_video else f"  {job.name}"
        self.progress.update(self.current, description=name, completed=0, visible=False)

    def tiles(self, done: int, total: int) -> None:
        # Only images that need several tiles get their own bar.
        self.progress.update(self.current, completed=done, total=total, visible=total > 1)

    def frames(self, done: int, total: int | None) -> None:
        self.progress.update(self.current, completed=done, total=total, visible=True)

    def wrote(self, job: Job) -> None:
        if self.lines:
            for out in job.outputs():  # the derained file, then any --save-rain layers
                self.reporter.info(f"wrote {out}")

    def ended(self, job: Job) -> None:
        self.progress.update(self.current, visible=False)
        self.progress.advance(self.files)
        self.ended_jobs += 1


def _progress(reporter: Reporter) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=reporter.console,
        # Off when stderr is a pipe or a file: a log should get lines, not bar redraws.
        disable=reporter.quiet or not reporter.console.is_terminal,
        transient=True,
    )


InputsArg = Annotated[
    list[str], typer.Argument(metavar="IMAGE", help="Files, folders, globs, or - (stdin).")
]
OutputOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="Output file, folder, or - (stdout).")
]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Walk subfolders.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist.")]
SaveRainOpt = Annotated[
    bool, typer.Option("--save-rain", help="Also write <stem>_rain.png and <stem>_mask.png.")
]
QualityOpt = Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality.")]
CodecOpt = Annotated[
    str | None,
    typer.Option(help="Video encoder: h264 (default; vp9 for .webm), h265, vp9 or an FFmpeg name."),
]
CrfOpt = Annotated[
    int | None,
    typer.Option(min=0, max=63, help="Video quality, lower is better (default: 18 for h264)."),
]
DeflickerOpt = Annotated[
    bool,
    typer.Option(help="Video: smooth what differs little between frames (no trails on motion)."),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Run on the Ray cluster at ADDRESS, or on a local Ray started for the job "
        "when --ray comes last or before another option (needs derain[ray]).",
    ),
]


def run(
    inputs: InputsArg,
    output: OutputOpt = None,
    recursive: RecursiveOpt = False,
    overwrite: OverwriteOpt = False,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "auto",
    tile: TileOpt = "auto",
    overlap: OverlapOpt = DEFAULT_OVERLAP,
    precision: PrecisionOpt = "auto",
    fp32: Fp32Opt = False,
    save_rain: SaveRainOpt = False,
    quality: QualityOpt = 95,
    codec: CodecOpt = None,
    crf: CrfOpt = None,
    deflicker: DeflickerOpt = False,
    max_pixels: MaxPixelsOpt = None,
    ray: RayOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Derain images (help text: ``HELP``)."""
    with command(quiet, debug, max_pixels) as reporter:
        check_model_options(tile, precision, fp32, device)
        if ray is not None:  # the same job on a Ray cluster
            from .ray_run import run_on_ray

            run_on_ray(
                reporter,
                inputs,
                output,
                address=None if ray == LOCAL_RAY else ray,
                recursive=recursive,
                overwrite=overwrite,
                save_rain=save_rain,
                quality=quality,
                model=model,
                device=device,
                tile=tile,
                overlap=overlap,
                precision="fp32" if fp32 else precision,
            )
            return
        _refuse_local_problems(inputs, output)
        plan = plan_jobs(inputs, output, recursive, save_rain)
        _refuse_terminal_output(plan)
        for line in plan.errors:
            reporter.error(line)
        counts = BatchCounts(failed=len(plan.errors))
        options = ModelOptions(model, device, tile, overlap, parse_precision(precision, fp32))
        video = VideoSettings(codec, crf, deflicker)
        _run_jobs(reporter, plan, options, quality, video, overwrite, counts)
        if not plan.single:
            reporter.info(counts.summary())
        if counts.failed:
            raise typer.Exit(1)


def _refuse_local_problems(inputs: list[str], output: str | None) -> None:
    """Refuse what only ``--ray`` does (file system URIs) and piped video, before any work."""
    uris = [spec for spec in (*inputs, output or "") if is_uri(spec)]
    if uris:
        raise UsageProblem.about(uris[0], "file system URIs are read and written with --ray")
    if STDIO in inputs and output not in (None, STDIO) and is_video_name(Path(output)):
        raise UsageProblem(
            f"-o {output}: piped video is not supported (only images come through "
            "stdin); save the video to a file and give its name"
        )


def _refuse_terminal_output(plan: Plan) -> None:
    """Refuse to write image bytes to standard output when it is a terminal."""
    if any(job.target is None for job in plan.jobs) and stdout_is_terminal():
        raise UsageProblem(
            "-o -: will not write image bytes to a terminal; redirect standard output "
            "(derain - > clean.png) or give -o FILE"
        )


def _run_jobs(
    reporter: Reporter,
    plan: Plan,
    options: ModelOptions,
    quality: int,
    video: VideoSettings,
    overwrite: bool,
    counts: BatchCounts,
) -> None:
    """Run the plan's jobs under progress bars; Ctrl-C reports what was done and exits 130."""
    with _progress(reporter) as progress:
        bars = _Bars(reporter, progress, lines=plan.single or progress.disable)
        runner = BatchRunner(options.load, quality=quality, video=video, events=bars)
        todo = select_jobs(plan.jobs, runner, overwrite, counts)
        progress.update(bars.files, total=len(todo))
        try:
            runner.run(todo, counts)
        except KeyboardInterrupt:
            left = len(todo) - bars.ended_jobs  # the one interrupted is not done
            reporter.error(f"interrupted; {counts.summary()}, not done {left}")
            raise typer.Exit(130) from None


def stdout_is_terminal() -> bool:
    """Whether standard output is a terminal (image bytes there would garble it)."""
    return sys.stdout.isatty()


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    app.command("run", help=HELP, cls=PlainUsage)(run)
