"""``derain run`` (also ``derain IMAGE``): derain files, folders, globs or a pipe."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Annotated, Any

import typer
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..arrow_files import is_uri
from ..errors import ImageError, OutputError
from ..imaging import open_image
from ..inference import Deraining
from ..io_files import Files, LocalFiles, encode_image
from ..tiling import DEFAULT_OVERLAP
from . import LOCAL_RAY
from .batch import Job, plan_jobs
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
    describe,
    load_deraining,
)

HELP = """Derain images: files, folders (-r to recurse), glob patterns, or - for a pipe.

Without -o, IMAGE becomes IMAGE_derained.EXT beside it; with several inputs, -o is a folder
that mirrors the input tree. Existing outputs are skipped unless --overwrite, so rerunning an
interrupted command finishes the job. `derain IMAGE` is short for `derain run IMAGE`.
"""


def _read_stdin() -> Image.Image:
    data = sys.stdin.buffer.read()
    if not data:
        raise ImageError("<stdin>: no image data on standard input")
    return open_image(data, "<stdin>")


class _Runner:
    """Runs the jobs one by one; the model is loaded only when a job needs it.

    Images are read through ``inputs`` and written through ``outputs`` (local paths unless
    given: a Ray job's may be on a pyarrow file system).
    """

    def __init__(
        self,
        options: dict[str, Any],
        quality: int,
        progress: Progress,
        video: dict[str, Any] | None = None,
        inputs: Files | None = None,
        outputs: Files | None = None,
    ) -> None:
        self.options = options
        self.quality = quality
        self.video = video or {}
        self.inputs = inputs or LocalFiles()
        self.outputs = outputs or LocalFiles()
        self.progress = progress
        self.tiles = progress.add_task("tiles", visible=False, total=None)
        self._deraining: Deraining | None = None

    def deraining(self) -> Deraining:
        if self._deraining is None:
            self._deraining = load_deraining(**self.options)
        return self._deraining

    def _on_tile(self, done: int, total: int) -> None:
        # Only images that need several tiles get their own bar.
        self.progress.update(self.tiles, completed=done, total=total, visible=total > 1)

    def _on_frame(self, done: int, total: int | None) -> None:
        self.progress.update(self.tiles, completed=done, total=total, visible=True)

    def process_video(self, job: Job) -> None:
        from ..video import Deflicker

        assert job.source is not None and job.target is not None
        self.progress.update(self.tiles, description=f"  {job.name} (frames)", completed=0)
        deflicker = Deflicker() if self.video.get("deflicker") else None
        self.deraining().run_video(
            job.source.path,
            job.target,
            rain=job.layers[0] if job.layers else None,
            codec=self.video.get("codec"),
            crf=self.video.get("crf"),
            deflicker=deflicker,
            progress=self._on_frame,
        )
        self.progress.update(self.tiles, visible=False)

    def process(self, job: Job) -> None:
        if job.is_video:
            self.process_video(job)
            return
        deraining = self.deraining()
        image = self.inputs.open_image(job.source.path) if job.source else _read_stdin()
        self.progress.update(self.tiles, description=f"  {job.name}", completed=0, visible=False)
        result = deraining.run(
            image, return_layers="view" if job.layers else False, progress=self._on_tile
        )
        self.progress.update(self.tiles, visible=False)
        derained = result.image if job.layers is not None else result
        meta = {
            "icc_profile": image.info.get("icc_profile"),
            "exif": image.getexif(),
            "made_by": deraining.made_by,
        }
        own = image.format if image.format in Image.SAVE else None
        if job.target is None:
            data = encode_image(derained, own or "PNG", self.quality, **meta)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        write = self.outputs.write_image
        write(derained, job.target, self.quality, **meta)
        if job.layers is not None:
            made_by = deraining.made_by
            write(result.rain, job.layers[0], format="PNG", made_by=made_by)
            write(result.mask, job.layers[1], format="PNG", made_by=made_by)

    def stale_reason(self, job: Job) -> str | None:
        """Why existing outputs must be redone: another model made them (``None``: keep them).

        Outputs with no record (BMP, PPM, or written by an older derain) are kept.
        """
        assert job.target is not None
        recorded = self.outputs.read_made_by(job.target)
        if recorded is None or f"sha256:{self.deraining().weights_sha256}" in recorded:
            return None
        return f"redoing {job.target}: it was made by another model ({recorded})"


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


def run(
    inputs: Annotated[
        list[str], typer.Argument(metavar="IMAGE", help="Files, folders, globs, or - (stdin).")
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Output file, folder, or - (stdout)."),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Walk subfolders.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace outputs that exist.")
    ] = False,
    model: ModelOpt = "danet",
    device: DeviceOpt = "auto",
    tile: TileOpt = "auto",
    overlap: OverlapOpt = DEFAULT_OVERLAP,
    precision: PrecisionOpt = "auto",
    fp32: Fp32Opt = False,
    save_rain: Annotated[
        bool, typer.Option("--save-rain", help="Also write <stem>_rain.png and <stem>_mask.png.")
    ] = False,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality.")] = 95,
    codec: Annotated[
        str | None,
        typer.Option(
            help="Video encoder: h264 (default; vp9 for .webm), h265, vp9 or an FFmpeg name."
        ),
    ] = None,
    crf: Annotated[
        int | None,
        typer.Option(min=0, max=63, help="Video quality, lower is better (default: 18 for h264)."),
    ] = None,
    deflicker: Annotated[
        bool,
        typer.Option(
            help="Video: smooth what differs little between frames (no trails on motion)."
        ),
    ] = False,
    max_pixels: MaxPixelsOpt = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Run on the Ray cluster at ADDRESS, or on a local Ray started for the job "
            "when --ray comes last or before another option (needs derain[ray]).",
        ),
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Derain images (help text: ``HELP``)."""
    with command(quiet, debug, max_pixels) as reporter:
        check_model_options(tile, precision, fp32)
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
        uris = [spec for spec in (*inputs, output or "") if is_uri(spec)]
        if uris:
            raise UsageProblem(f"{uris[0]}: file system URIs are read and written with --ray")
        plan = plan_jobs(inputs, output, recursive, save_rain)
        if any(job.target is None for job in plan.jobs) and stdout_is_terminal():
            raise UsageProblem(
                "-o -: will not write image bytes to a terminal; redirect standard output "
                "(derain - > clean.png) or give -o FILE"
            )
        for line in plan.errors:
            reporter.error(line)
        counts = Counter(failed=len(plan.errors))
        options = {
            "model": model,
            "device": device,
            "tile": tile,
            "overlap": overlap,
            "fp32": fp32,
            "precision": precision,
        }
        with _progress(reporter) as progress:
            # One line per file where no bar is drawn (a log, CI) and for a single image.
            lines = plan.single or progress.disable
            files = progress.add_task("files", total=None)
            video = {"codec": codec, "crf": crf, "deflicker": deflicker}
            runner = _Runner(
                options, quality, progress, video
            )  # its tile bar goes below the files bar
            todo = _select(plan.jobs, runner, overwrite, reporter, counts, lines)
            progress.update(files, total=len(todo))
            started = 0
            try:
                for job in todo:
                    runner.deraining()  # a model that cannot load stops the whole run
                    try:
                        runner.process(job)
                        counts["done"] += 1
                        if lines and job.target is not None:
                            reporter.info(f"wrote {job.target}")
                    except Exception as exc:  # keep going: one bad file must not stop a batch
                        counts["failed"] += 1
                        reporter.error(describe(exc, job.name), exc)
                    progress.advance(files)
                    started += 1
            except KeyboardInterrupt:
                left = len(todo) - started  # the one interrupted is not done
                reporter.error(f"interrupted; {_summary(counts)}, not done {left}")
                raise typer.Exit(130) from None
        if not plan.single:
            reporter.info(_summary(counts))
        if counts["failed"]:
            raise typer.Exit(1)


def _summary(counts: Counter[str]) -> str:
    return f"done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']}"


def _select(
    jobs: list[Job],
    runner: _Runner,
    overwrite: bool,
    reporter: Reporter,
    counts: Counter[str],
    lines: bool,
) -> list[Job]:
    """The jobs to run: outputs that exist are skipped (unless another model made them), and
    every output is checked to be writable before any image is derained."""
    todo = []
    exists = runner.outputs.exists
    for job in jobs:
        if job.target is not None and not overwrite and all(exists(p) for p in job.outputs()):
            reason = runner.stale_reason(job)
            if reason is None:
                counts["skipped"] += 1
                if lines:
                    reporter.info(f"skipped {job.target}: it exists (use --overwrite)")
                continue
            reporter.info(reason)
        try:
            for out in job.outputs():
                runner.outputs.check_writable(out)
        except OutputError as exc:
            counts["failed"] += 1
            reporter.error(describe(exc, job.name), exc)
            continue
        todo.append(job)
    return todo


def stdout_is_terminal() -> bool:
    """Whether standard output is a terminal (image bytes there would garble it)."""
    return sys.stdout.isatty()


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    app.command("run", help=HELP, cls=PlainUsage)(run)
