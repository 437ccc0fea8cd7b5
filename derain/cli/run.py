"""``derain run`` (also ``derain IMAGE``): derain files, folders, globs or a pipe."""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import ImageError
from ..imaging import open_image
from ..inference import Deraining
from ..io_files import encode_image, format_for_path, write_image_atomic
from .batch import Job, plan_jobs
from .common import (
    DebugOpt,
    DeviceOpt,
    Fp32Opt,
    MaxPixelsOpt,
    ModelOpt,
    OverlapOpt,
    QuietOpt,
    Reporter,
    TileOpt,
    describe,
    fatal_errors,
    load_deraining,
    parse_tile,
    pixel_limit,
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
    # open_image reads paths; a private temp copy gives stdin the same checks and messages.
    with tempfile.TemporaryDirectory(prefix="derain-") as folder:
        path = Path(folder) / "stdin"
        path.write_bytes(data)
        try:
            return open_image(path)
        except ImageError as exc:
            raise ImageError(str(exc).replace(str(path), "<stdin>")) from None


class _Runner:
    """Runs the jobs one by one; the model is loaded only when a job needs it."""

    def __init__(self, options: dict[str, Any], quality: int, progress: Progress) -> None:
        self.options = options
        self.quality = quality
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

    def process(self, job: Job) -> None:
        deraining = self.deraining()
        image = open_image(job.source.path) if job.source else _read_stdin()
        self.progress.update(self.tiles, description=f"  {job.name}", completed=0, visible=False)
        result = deraining.run(image, return_layers=job.layers is not None, progress=self._on_tile)
        self.progress.update(self.tiles, visible=False)
        derained = result.image if job.layers is not None else result
        meta = {"icc_profile": image.info.get("icc_profile"), "exif": image.getexif()}
        own = image.format if image.format in Image.SAVE else None
        if job.target is None:
            data = encode_image(derained, own or "PNG", self.quality, **meta)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        fmt = format_for_path(job.target) or own or "PNG"
        write_image_atomic(derained, job.target, self.quality, format=fmt, **meta)
        if job.layers is not None:
            write_image_atomic(result.rain, job.layers[0], format="PNG")
            write_image_atomic(result.mask, job.layers[1], format="PNG")


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
        list[str], typer.Argument(metavar="IMAGE...", help="Files, folders, globs, or - (stdin).")
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
    overlap: OverlapOpt = 32,
    fp32: Fp32Opt = False,
    save_rain: Annotated[
        bool, typer.Option("--save-rain", help="Also write <stem>_rain.png and <stem>_mask.png.")
    ] = False,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality.")] = 95,
    max_pixels: MaxPixelsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Derain images (help text: ``HELP``)."""
    reporter = Reporter(quiet, debug)
    with fatal_errors(reporter), pixel_limit(max_pixels):
        parse_tile(tile)  # a bad --tile is a usage error before any work
        plan = plan_jobs(inputs, output, recursive, save_rain)
        for line in plan.errors:
            reporter.error(line)
        counts = Counter(failed=len(plan.errors))
        options = {"model": model, "device": device, "tile": tile, "overlap": overlap, "fp32": fp32}
        with _progress(reporter) as progress:
            files = progress.add_task("files", total=len(plan.jobs))
            runner = _Runner(options, quality, progress)  # its tile bar goes below the files bar
            for job in plan.jobs:
                if (
                    job.target is not None
                    and not overwrite
                    and all(p.exists() for p in job.outputs())
                ):
                    counts["skipped"] += 1
                    if plan.single:
                        reporter.info(f"skipped {job.target}: it exists (use --overwrite)")
                else:
                    runner.deraining()  # a model that cannot load stops the whole run
                    try:
                        runner.process(job)
                        counts["done"] += 1
                        if plan.single and job.target is not None:
                            reporter.info(f"wrote {job.target}")
                    except Exception as exc:  # keep going: one bad file must not stop a batch
                        counts["failed"] += 1
                        reporter.error(describe(exc, job.name), exc)
                progress.advance(files)
        if not plan.single:
            reporter.info(
                f"done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']}"
            )
        if counts["failed"]:
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    app.command("run", help=HELP)(run)
