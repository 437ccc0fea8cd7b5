"""``derain eval``: mean PSNR / SSIM of a model on a paired folder, the paper's protocol."""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .._defaults import DEFAULT_MODEL
from ..atomic import atomic_write
from ..errors import DerainError, OutputError, UsageProblem
from ..io.imaging import open_image
from ..io.suffixes import is_image_name
from ..io.writing import check_writable
from ..scoring.evaluate import Scored
from ..scoring.evaluate import evaluate as evaluate_pairs
from ..scoring.metrics import ScoreSummary
from ..scoring.pairs import scan_pairs
from ..tiling import DEFAULT_OVERLAP
from .common import (
    DebugOpt,
    DeviceOpt,
    Fp32Opt,
    MaxPixelsOpt,
    OverlapOpt,
    PrecisionOpt,
    QuietOpt,
    Reporter,
    TileOpt,
    check_model_options,
    command,
    describe,
    load_deraining,
)

if TYPE_CHECKING:
    from ..inference import Deraining
    from ..scoring.evaluate_real import PhotoResult, RealEvaluation

HELP = """Score models on a paired folder (PSNR / SSIM) or on real rainy photos (no reference).

The folder given to --data holds rain/ + norain/ (or input/ + target/), with images paired by
file name: mean PSNR / SSIM on the Y channel, the paper's protocol. The folder given to --real
holds rainy photos without clean twins: each model's rain left along the photo's streaks
(lower is better), the texture it lost (blur, halos) and its time per megapixel; with several
-m, how often each one leaves less rain than the first. --report writes one HTML file with
the 1:1 crops to look at. Outputs on real photos are cached (--cache), so adding a model
reruns only that model. A file that cannot be scored is reported and skipped; the exit code
is then 1.
"""

#: Models scored when no -m is given.
DEFAULT_MODELS = (DEFAULT_MODEL,)


def _write(path: Path, text: str) -> None:
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise OutputError.about(path, f"cannot write ({exc.strerror or exc})") from None


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _write_csv(path: Path, summaries: dict[str, ScoreSummary]) -> None:
    """Per-image scores; with several models, one row per image and model."""
    if len(summaries) == 1:
        (summary,) = summaries.values()
        rows = [
            [name, f"{score.psnr:.4f}", f"{score.ssim:.6f}"]
            for name, score in zip(summary.names, summary.scores, strict=True)
        ]
        _write(path, _csv_text(["image", "psnr", "ssim"], rows))
        return
    rows = [
        [name, label, f"{score.psnr:.4f}", f"{score.ssim:.6f}"]
        for label, summary in summaries.items()
        for name, score in zip(summary.names, summary.scores, strict=True)
    ]
    _write(path, _csv_text(["image", "model", "psnr", "ssim"], rows))


def _write_real_csv(path: Path, evaluation: RealEvaluation) -> None:
    """One row per photo and model."""
    rows = []
    for photo in evaluation.photos:
        for model in evaluation.models:
            m = photo.measures[model]
            seconds = f"{m.seconds:.3f}" if m.seconds is not None else ""
            rows.append(
                [
                    photo.path.name,
                    model,
                    f"{m.rain_left:.5f}",
                    f"{m.rain_removed:.5f}",
                    f"{m.texture_lost:.6f}",
                    seconds,
                    f"{photo.megapixels:.4f}",
                ]
            )
    header = [
        "photo",
        "model",
        "rain_left",
        "rain_removed",
        "texture_lost",
        "seconds",
        "megapixels",
    ]
    _write(path, _csv_text(header, rows))


@dataclass
class PairCrops:
    """The 1:1 crops of one pair for the report: the input, each model's output, the clean."""

    box: tuple[int, int, int, int]
    rainy: Image.Image
    clean: Image.Image
    outputs: list[tuple[str, Image.Image]] = field(default_factory=list)
    psnr: dict[str, float] = field(default_factory=dict)
    ssim: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, scored: Scored) -> PairCrops:
        from ..scoring.evaluate_real import CROP
        from ..scoring.noreference import densest_streak_window, streak_angle

        rainy = scored.rainy.astype(np.float32) / 255
        x, y = densest_streak_window(rainy, streak_angle(rainy), CROP)
        h, w = scored.rainy.shape[:2]
        box = (x, y, x + min(CROP[0], w), y + min(CROP[1], h))
        return cls(
            box,
            Image.fromarray(scored.rainy).crop(box),
            Image.fromarray(scored.clean).crop(box),
        )

    def add(self, label: str, scored: Scored) -> None:
        self.outputs.append((label, Image.fromarray(scored.derained).crop(self.box)))
        self.psnr[label], self.ssim[label] = scored.score.psnr, scored.score.ssim


def short_labels(models: list[str]) -> dict[str, str]:
    """A short, unique name per model for the report's headings: a path's last part."""
    labels: dict[str, str] = {}
    for model in models:
        short = Path(model).name or model if ("/" in model or "\\" in model) else model
        label, n = short, 2
        while label in labels.values():
            label, n = f"{short} ({n})", n + 1
        labels[model] = label
    return labels


def _paired_report(
    data: Path, summaries: dict[str, ScoreSummary], crops: dict[str, PairCrops]
) -> str:
    from ..scoring.report_html import Column, ReportRow, render_report

    labels = list(summaries)
    short = short_labels(labels)
    columns = [Column(f"PSNR {short[m]}", 2) for m in labels]
    columns += [Column(f"SSIM {short[m]}", 4) for m in labels]
    rows = []
    for name, pair in crops.items():
        values: dict[str, float | None] = {f"PSNR {short[m]}": pair.psnr.get(m) for m in labels}
        values |= {f"SSIM {short[m]}": pair.ssim.get(m) for m in labels}
        outputs = [(short[label], crop) for label, crop in pair.outputs]
        shown = [("input", pair.rainy), *outputs, ("clean", pair.clean)]
        rows.append(ReportRow(name, values, shown))
    # The worst images first, by the first model's PSNR.
    rows.sort(key=lambda r: r.values.get(columns[0].title) or 0.0)
    summary = [
        [short[m], m, str(len(s.scores)), f"{s.psnr:.2f}", f"{s.ssim:.4f}"]
        for m, s in summaries.items()
    ]
    return render_report(
        f"derain eval: {data}",
        summary,
        ["label", "model", "images", "PSNR (dB)", "SSIM"],
        columns,
        rows,
        ["Worst first by the first model's PSNR (Y channel, the paper's protocol)."],
    )


def _real_means(evaluation: RealEvaluation, model: str) -> list[str]:
    """A model's mean rain left, mean texture lost and s/MP, as the table and report show."""
    speed = evaluation.seconds_per_megapixel(model)
    return [
        f"{evaluation.mean(model, 'rain_left'):.3f}",
        f"{evaluation.mean(model, 'texture_lost'):.5f}",
        f"{speed:.2f}" if speed is not None else "–",
    ]


def _real_report(
    folder: Path,
    evaluation: RealEvaluation,
    crops: dict[str, list[tuple[str, Image.Image]]],
    comparisons: list[str],
) -> str:
    from ..scoring.report_html import Column, ReportRow, render_report

    short = short_labels(evaluation.models)
    columns = [Column(f"rain left {short[m]}", 3) for m in evaluation.models]
    columns += [Column(f"texture lost {short[m]}", 5) for m in evaluation.models]
    rows = []
    for photo in evaluation.photos:
        values: dict[str, float | None] = {}
        for m in evaluation.models:
            values[f"rain left {short[m]}"] = photo.measures[m].rain_left
            values[f"texture lost {short[m]}"] = photo.measures[m].texture_lost
        shown = [(short.get(label, label), crop) for label, crop in crops.get(photo.name, [])]
        rows.append(ReportRow(photo.name, values, shown))
    summary = [[short[m], m, *_real_means(evaluation, m)] for m in evaluation.models]
    notes = [
        *comparisons,
        "Rain left: the output's energy of thin bright streaks along the photo's rain, as a "
        "share of the input's (lower is better). Texture lost: how much the output brightened "
        "the input, which blur and halos do and removing rain never does (lower is better).",
    ]
    return render_report(
        f"derain eval --real: {folder}",
        summary,
        ["label", "model", "rain left", "texture lost", "s / MP"],
        columns,
        rows,
        notes,
    )


ModelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        metavar="<str>",
        help="Model name (see `derain models`), hf-hub:owner/repo, or path; repeat to compare.",
    ),
]


def evaluate(
    data: Annotated[
        Path | None,
        typer.Option("--data", "-d", help="Paired folder: rain/+norain/ or input/+target/."),
    ] = None,
    real: Annotated[
        Path | None,
        typer.Option("--real", help="Folder of real rainy photos without clean twins."),
    ] = None,
    models: ModelsOpt = None,
    identity: Annotated[
        bool, typer.Option("--identity", help="Score the rainy inputs themselves (no model).")
    ] = False,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write per-image scores to this CSV file.")
    ] = None,
    report_path: Annotated[
        Path | None,
        typer.Option("--report", help="Write a self-contained HTML report with 1:1 crops."),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Keep outputs on real photos here (default ~/.cache/derain/outputs)."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every model on every photo again.")
    ] = False,
    device: DeviceOpt = "auto",
    tile: TileOpt = "auto",
    overlap: OverlapOpt = DEFAULT_OVERLAP,
    precision: PrecisionOpt = "auto",
    fp32: Fp32Opt = False,
    max_pixels: MaxPixelsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score models on a paired folder or on real photos (help text: ``HELP``)."""
    with command(quiet, debug, max_pixels) as reporter:
        check_model_options(tile, precision, fp32, device)
        if (data is None) == (real is None):
            raise UsageProblem("give either --data (a paired folder) or --real (rainy photos)")
        names = list(dict.fromkeys(models or DEFAULT_MODELS))  # each model once, in order
        if real is not None and identity:
            raise UsageProblem("--identity scores paired folders only; use --data")
        for path in (csv_path, report_path):
            if path is not None:
                check_writable(path)  # before any image is derained
        load = functools.partial(
            load_deraining,
            device=device,
            tile=tile,
            overlap=overlap,
            fp32=fp32,
            precision=precision,
        )
        if real is not None:
            from ..output_cache import default_cache_dir

            root = None if no_cache else (cache or default_cache_dir("outputs"))
            _evaluate_real(reporter, real, names, load, root, csv_path, report_path, quiet)
        else:
            assert data is not None  # one of the two was given (checked above)
            _evaluate_paired(reporter, data, names, identity, load, csv_path, report_path, quiet)


def _progress(reporter: Reporter, quiet: bool) -> Progress:
    return Progress(
        console=reporter.console, disable=quiet or not reporter.console.is_terminal, transient=True
    )


def _evaluate_paired(
    reporter: Reporter,
    data: Path,
    names: list[str],
    identity: bool,
    load: Callable[[str], Deraining],
    csv_path: Path | None,
    report_path: Path | None,
    quiet: bool,
) -> None:
    scan = scan_pairs(data)
    unpaired = [f"{scan.layout[0]}/{n}" for n in scan.unpaired_inputs]
    unpaired += [f"{scan.layout[1]}/{n}" for n in scan.unpaired_targets]
    if unpaired:
        listing = ", ".join(unpaired)
        reporter.warning(f"{data}: {len(unpaired)} unpaired file(s) ignored: {listing}")
    labels = ["rainy inputs"] if identity else names
    runners = [None] if identity else [load(name) for name in names]
    summaries: dict[str, ScoreSummary] = {}
    crops: dict[str, PairCrops] = {}
    failed: set[str] = set()
    with _progress(reporter, quiet) as progress:
        lines = progress.disable and not quiet  # a log gets one line per pair
        for label, deraining in zip(labels, runners, strict=True):

            def report(scored: Scored, label: str = label) -> None:
                if lines:
                    score = scored.score
                    reporter.info(f"{scored.label}: {score.psnr:.2f} dB / {score.ssim:.4f}")
                if report_path is not None:
                    crops.setdefault(scored.name, PairCrops.of(scored)).add(label, scored)

            def skip(item: str, exc: DerainError) -> None:
                if item not in failed:  # a bad pair is reported once, and skipped
                    failed.add(item)
                    reporter.error(describe(exc, item), exc)

            pairs = progress.track(scan.pairs, description=f"scoring {label}")
            summaries[label] = evaluate_pairs(deraining, pairs, on_image=report, on_error=skip)
    if not any(s.scores for s in summaries.values()):
        raise DerainError.about(data, "no pair could be scored")
    if csv_path is not None:
        _write_csv(csv_path, summaries)
    table = Table(title=f"{data} ({', '.join(labels)})")
    for column in ("model", "images", "PSNR (dB)", "SSIM"):
        table.add_column(column, justify="right")
    for label, summary in summaries.items():
        table.add_row(label, str(len(summary.scores)), f"{summary.psnr:.2f}", f"{summary.ssim:.4f}")
    Console().print(table)
    if report_path is not None:
        _write(report_path, _paired_report(data, summaries, crops))
        reporter.info(f"wrote {report_path}")
    if failed:
        reporter.error(f"{len(failed)} of {len(scan.pairs)} pair(s) could not be scored")
        raise typer.Exit(1)


def _evaluate_real(
    reporter: Reporter,
    folder: Path,
    names: list[str],
    load: Callable[[str], Deraining],
    cache: Path | None,
    csv_path: Path | None,
    report_path: Path | None,
    quiet: bool,
) -> None:
    from ..io.discovery import iter_images
    from ..scoring.evaluate_real import CROP, compare, evaluate_real

    if not folder.is_dir():
        raise DerainError.about(folder, "no such folder")
    photos = sorted(p for p in iter_images(folder, recursive=True) if is_image_name(p))
    if not photos:
        raise DerainError.about(folder, "no image files in this folder")
    runners = [(name, load(name)) for name in names]
    crops: dict[str, list[tuple[str, Image.Image]]] = {}
    failed: list[str] = []

    def keep(photo: PhotoResult, outputs: dict[str, Image.Image]) -> None:
        if report_path is not None:
            x, y = photo.window
            box = (x, y, x + min(CROP[0], photo.size[0]), y + min(CROP[1], photo.size[1]))
            rainy = open_image(photo.path).convert("RGB")
            crops[photo.name] = [("input", rainy.crop(box))]
            crops[photo.name] += [(label, out.crop(box)) for label, out in outputs.items()]

    def skip(path: Path, exc: DerainError | OSError) -> None:
        failed.append(path.name)
        reporter.error(describe(exc, str(path)), exc)

    with _progress(reporter, quiet) as progress:
        task = progress.add_task("judging", total=len(photos))

        def step(photo: PhotoResult, outputs: dict[str, Image.Image]) -> None:
            keep(photo, outputs)
            progress.advance(task)
            if progress.disable and not quiet:
                parts = [f"{n} {photo.measures[n].rain_left:.3f}" for n in names]
                reporter.info(f"{photo.path}: rain left " + ", ".join(parts))

        def skip_and_step(path: Path, exc: DerainError | OSError) -> None:
            skip(path, exc)
            progress.advance(task)

        evaluation = evaluate_real(runners, photos, cache, on_photo=step, on_error=skip_and_step)
    if not evaluation.photos:
        raise DerainError.about(folder, "no photo could be judged")
    table = Table(title=f"{folder}: {len(evaluation.photos)} real photos, no reference")
    for column in ("model", "rain left", "texture lost", "s / MP"):
        table.add_column(column, justify="right")
    for name in names:
        table.add_row(name, *_real_means(evaluation, name))
    console = Console()
    console.print(table)
    lines = [compare(evaluation, names[0], other).line() for other in names[1:]]
    for line in lines:  # plain lines, never wrapped, for logs and scripts
        typer.echo(line)
    if csv_path is not None:
        _write_real_csv(csv_path, evaluation)
    if report_path is not None:
        _write(report_path, _real_report(folder, evaluation, crops, lines))
        reporter.info(f"wrote {report_path}")
    if failed:
        reporter.error(f"{len(failed)} of {len(photos)} photo(s) could not be judged")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``eval`` to ``app``."""
    app.command("eval", help=HELP)(evaluate)
