"""``derain eval``: mean PSNR / SSIM of a model on a paired folder, the paper's protocol."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ..errors import DerainError, ImageError, OutputError
from ..imaging import open_image
from ..inference import Deraining
from ..metrics import Score, ScoreSummary, score_pair
from ..pairs import scan_pairs
from .common import (
    DebugOpt,
    DeviceOpt,
    Fp32Opt,
    MaxPixelsOpt,
    ModelOpt,
    OverlapOpt,
    PrecisionOpt,
    QuietOpt,
    Reporter,
    TileOpt,
    describe,
    fatal_errors,
    load_deraining,
    parse_precision,
    parse_tile,
    pixel_limit,
)

HELP = """Score a model on a paired folder: mean PSNR / SSIM on the Y channel.

The folder given to --data holds rain/ + norain/ (or input/ + target/), with images paired
by file name. A pair that cannot be scored is reported and skipped; the exit code is then 1.
"""


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _write_csv(path: Path, summary: ScoreSummary) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "psnr", "ssim"])
            for name, score in zip(summary.names, summary.scores, strict=True):
                writer.writerow([name, f"{score.psnr:.4f}", f"{score.ssim:.6f}"])
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def evaluate(
    data: Annotated[
        Path, typer.Option("--data", "-d", help="Paired folder: rain/+norain/ or input/+target/.")
    ],
    model: ModelOpt = "danet",
    identity: Annotated[
        bool, typer.Option("--identity", help="Score the rainy inputs themselves (no model).")
    ] = False,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write per-image scores to this CSV file.")
    ] = None,
    device: DeviceOpt = "auto",
    tile: TileOpt = "auto",
    overlap: OverlapOpt = 32,
    precision: PrecisionOpt = "auto",
    fp32: Fp32Opt = False,
    max_pixels: MaxPixelsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score a model on a paired folder (help text: ``HELP``)."""
    reporter = Reporter(quiet, debug)
    with fatal_errors(reporter), pixel_limit(max_pixels):
        parse_tile(tile)
        parse_precision(precision, fp32)
        scan = scan_pairs(data)
        unpaired = [f"{scan.layout[0]}/{n}" for n in scan.unpaired_inputs]
        unpaired += [f"{scan.layout[1]}/{n}" for n in scan.unpaired_targets]
        if unpaired:
            listing = ", ".join(unpaired)
            reporter.warning(f"{data}: {len(unpaired)} unpaired file(s) ignored: {listing}")
        deraining = (
            None if identity else load_deraining(model, device, tile, overlap, fp32, precision)
        )
        names: list[str] = []
        scores: list[Score] = []
        with Progress(
            console=reporter.console,
            disable=quiet or not reporter.console.is_terminal,
            transient=True,
        ) as progress:
            lines = progress.disable and not quiet  # a log gets one line per pair
            failed = 0
            for rainy, target in progress.track(scan.pairs, description="scoring"):
                try:  # a bad pair is reported and skipped; the others are still scored
                    score = _score(rainy, target, deraining)
                except DerainError as exc:
                    failed += 1
                    reporter.error(describe(exc, str(rainy)), exc)
                    continue
                names.append(rainy.name)
                scores.append(score)
                if lines:
                    reporter.info(f"{rainy}: {score.psnr:.2f} dB / {score.ssim:.4f}")
        if not scores:
            raise DerainError(f"{data}: no pair could be scored")
        summary = ScoreSummary(names=tuple(names), scores=tuple(scores))
        if csv_path is not None:
            _write_csv(csv_path, summary)
        table = Table(title=f"{data} ({'rainy inputs' if identity else model})")
        for column in ("images", "PSNR (dB)", "SSIM"):
            table.add_column(column, justify="right")
        table.add_row(str(len(scores)), f"{summary.psnr:.2f}", f"{summary.ssim:.4f}")
        Console().print(table)
        if failed:
            reporter.error(f"{failed} of {len(scan.pairs)} pair(s) could not be scored")
            raise typer.Exit(1)


def _score(rainy: Path, target: Path, deraining: Deraining | None) -> Score:
    """Score one pair; both images are read and their sizes compared before any derain."""
    image, clean = open_image(rainy), open_image(target)
    if image.size != clean.size:
        raise ImageError(
            f"{rainy}: size {image.width}×{image.height} differs from its target {target} "
            f"({clean.width}×{clean.height})"
        )
    restored = image if deraining is None else deraining.run(image)
    try:
        return score_pair(_rgb(restored), _rgb(clean))
    except ImageError as exc:  # the message names no file
        raise ImageError(f"{rainy}: {exc}") from None


def register(app: typer.Typer) -> None:
    """Add ``eval`` to ``app``."""
    app.command("eval", help=HELP)(evaluate)
