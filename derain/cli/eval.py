"""``derain eval``: mean PSNR / SSIM of a model on a paired folder, the paper's protocol."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ..errors import DerainError, OutputError
from ..evaluate import Scored
from ..evaluate import evaluate as evaluate_pairs
from ..metrics import ScoreSummary
from ..pairs import scan_pairs
from ..tiling import DEFAULT_OVERLAP
from ..writing import check_writable
from .common import (
    DebugOpt,
    DeviceOpt,
    Fp32Opt,
    MaxPixelsOpt,
    ModelOpt,
    OverlapOpt,
    PrecisionOpt,
    QuietOpt,
    TileOpt,
    check_model_options,
    command,
    describe,
    load_deraining,
)

HELP = """Score a model on a paired folder: mean PSNR / SSIM on the Y channel.

The folder given to --data holds rain/ + norain/ (or input/ + target/), with images paired
by file name. A pair that cannot be scored is reported and skipped; the exit code is then 1.
"""


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
    overlap: OverlapOpt = DEFAULT_OVERLAP,
    precision: PrecisionOpt = "auto",
    fp32: Fp32Opt = False,
    max_pixels: MaxPixelsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score a model on a paired folder (help text: ``HELP``)."""
    with command(quiet, debug, max_pixels) as reporter:
        check_model_options(tile, precision, fp32, device)
        scan = scan_pairs(data)
        if csv_path is not None:
            check_writable(csv_path)  # before any pair is derained
        unpaired = [f"{scan.layout[0]}/{n}" for n in scan.unpaired_inputs]
        unpaired += [f"{scan.layout[1]}/{n}" for n in scan.unpaired_targets]
        if unpaired:
            listing = ", ".join(unpaired)
            reporter.warning(f"{data}: {len(unpaired)} unpaired file(s) ignored: {listing}")
        deraining = (
            None if identity else load_deraining(model, device, tile, overlap, fp32, precision)
        )
        with Progress(
            console=reporter.console,
            disable=quiet or not reporter.console.is_terminal,
            transient=True,
        ) as progress:
            lines = progress.disable and not quiet  # a log gets one line per pair
            failed: list[str] = []

            def report(scored: Scored) -> None:
                if lines:
                    score = scored.score
                    reporter.info(f"{scored.label}: {score.psnr:.2f} dB / {score.ssim:.4f}")

            def skip(label: str, exc: DerainError) -> None:
                # a bad pair is reported and skipped; the others are still scored
                failed.append(label)
                reporter.error(describe(exc, label), exc)

            pairs = progress.track(scan.pairs, description="scoring")
            summary = evaluate_pairs(deraining, pairs, on_image=report, on_error=skip)
        if not summary.scores:
            raise DerainError(f"{data}: no pair could be scored")
        if csv_path is not None:
            _write_csv(csv_path, summary)
        table = Table(title=f"{data} ({'rainy inputs' if identity else model})")
        for column in ("images", "PSNR (dB)", "SSIM"):
            table.add_column(column, justify="right")
        table.add_row(str(len(summary.scores)), f"{summary.psnr:.2f}", f"{summary.ssim:.4f}")
        Console().print(table)
        if failed:
            reporter.error(f"{len(failed)} of {len(scan.pairs)} pair(s) could not be scored")
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``eval`` to ``app``."""
    app.command("eval", help=HELP)(evaluate)
