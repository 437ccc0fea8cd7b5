"""`derain train` and `derain rain-preview` (registered on the main app)."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import DerainError, UsageProblem
from .common import DeviceOpt, PlainUsage, Reporter, fatal_errors

if TYPE_CHECKING:
    from ..train.recipes import TrainConfig


DataOpt = Annotated[
    Path, typer.Option("--data", help="Paired folder, or clean photos with --synthetic.")
]
SyntheticOpt = Annotated[
    str | None,
    typer.Option(help="Synthesise rain on the fly: wide (recommended), real, light, heavy or mix."),
]
ValOpt = Annotated[
    list[Path] | None,
    typer.Option(help="Paired folder scored during training (repeat for several sets)."),
]
UnlabelledOpt = Annotated[
    Path | None,
    typer.Option(
        help="Real rainy photos without ground truth: distil the --teacher's outputs on "
        "them (a share of each batch, --set unlabelled_share=0.5)."
    ),
]
TeacherOpt = Annotated[
    str | None,
    typer.Option(help="The model whose outputs on --unlabelled are the targets (danet-plus)."),
]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder.")]
RecipeOpt = Annotated[
    str, typer.Option(help="Named settings: paper, cpu, or cpu-continue (with --init).")
]
VariantOpt = Annotated[str | None, typer.Option(help="Variant to train: danet or danet-plus.")]
InitOpt = Annotated[
    str | None, typer.Option(help="Start from these weights (fine-tune): name, hub id or path.")
]
StepsOpt = Annotated[int | None, typer.Option(help="Total optimisation steps.")]
EpochsOpt = Annotated[int | None, typer.Option(help="Total epochs (when --steps is unset).")]
BatchSizeOpt = Annotated[int | None, typer.Option(help="Global batch size.")]
LrOpt = Annotated[float | None, typer.Option(help="Peak learning rate.")]
WorkersOpt = Annotated[int | None, typer.Option(help="Data-loading processes.")]
SeedOpt = Annotated[int | None, typer.Option(help="Seed of the data and the initialisation.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Any other setting as KEY=VALUE (repeatable).")
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from <out>/last.safetensors.")]
ResumeFromOpt = Annotated[Path | None, typer.Option(help="Continue from this checkpoint file.")]
StopAtOpt = Annotated[
    int | None, typer.Option(help="Stop after this step; the schedule still spans the run.")
]
TimeBudgetOpt = Annotated[
    str | None,
    typer.Option(
        help="Train for this long (90s, 8m, 1.5h), export included: the schedule is "
        "fitted to the steps that fit."
    ),
]
ExportOpt = Annotated[
    Path | None,
    typer.Option(help="Write the best weights here (model.safetensors + config.json)."),
]
ShowConfigOpt = Annotated[
    bool, typer.Option("--show-config", help="Print the resolved settings and exit.")
]


def _overrides(**options: Any) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def train_command(
    data: DataOpt,
    synthetic: SyntheticOpt = None,
    val: ValOpt = None,
    unlabelled: UnlabelledOpt = None,
    teacher: TeacherOpt = None,
    out: OutOpt = None,
    recipe: RecipeOpt = "paper",
    model: VariantOpt = None,
    init: InitOpt = None,
    steps: StepsOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchSizeOpt = None,
    lr: LrOpt = None,
    workers: WorkersOpt = None,
    seed: SeedOpt = None,
    setting: SetOpt = None,
    resume: ResumeOpt = False,
    resume_from: ResumeFromOpt = None,
    stop_at: StopAtOpt = None,
    time_budget: TimeBudgetOpt = None,
    export: ExportOpt = None,
    device: DeviceOpt = "auto",
    show_config: ShowConfigOpt = False,
) -> None:
    """Train or fine-tune DANet (the paper's recipe by default)."""
    from ..train import train

    cfg = _train_config(
        recipe,
        setting,
        time_budget,
        data=str(data),
        synthetic=synthetic,
        val=os.pathsep.join(str(v) for v in val) if val else None,
        unlabelled=str(unlabelled) if unlabelled else None,
        teacher=teacher,
        out=str(out) if out else None,
        model=model,
        init=init,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        workers=workers,
        seed=seed,
    )
    if show_config:
        _show_config(cfg)
        return
    result = train(
        cfg,
        resume=str(resume_from) if resume_from else resume,
        export=str(export) if export else None,
        device=device,
        stop_at=stop_at,
        log=typer.echo,
    )
    if result.best_psnr is not None:
        typer.echo(f"best validation: {result.best_psnr:.2f} dB / {result.best_ssim:.4f}")


def _train_config(
    recipe: str, setting: list[str] | None, time_budget: str | None, **options: Any
) -> TrainConfig:
    """The recipe with the options (those given) and the ``--set`` settings applied over it.

    A setting that does not parse or fit is a usage problem.
    """
    from ..train import apply_overrides, get_recipe
    from ..train.recipes import parse_duration

    try:
        cfg = get_recipe(recipe)
        budget = parse_duration(time_budget) if time_budget else None
        cfg = apply_overrides(cfg, _overrides(**options, time_budget=budget))
        if time_budget and options["steps"] is None:  # the budget, not the recipe, sets the length
            cfg = apply_overrides(cfg, {"steps": None})
        cfg = apply_overrides(cfg, setting or [])
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    return cfg


def _show_config(cfg: TrainConfig) -> None:
    """Print each resolved setting as ``name = value``."""
    for field in dataclasses.fields(cfg):
        typer.echo(f"{field.name} = {getattr(cfg, field.name)!r}")


def rain_preview_command(
    images: Annotated[
        Path, typer.Argument(metavar="PHOTOS", help="Folder (or one file) of clean photos.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Image to write; the suffix sets the format.")
    ] = Path("rain.png"),
    preset: Annotated[
        list[str] | None,
        typer.Option(help="wide, real, light, heavy or mix; repeat to show several side by side."),
    ] = None,
    n: Annotated[int, typer.Option("--pairs", "-n", help="Number of pairs.")] = 8,
    crop: Annotated[int, typer.Option(help="Side of each crop in pixels.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the crops and the rain.")] = 0,
) -> None:
    """Write a grid of clean | synthetic-rain samples (one per preset) to an image."""
    from ..io.discovery import iter_images
    from ..train.synthetic import preview_grid

    paths = sorted(iter_images(images, recursive=True)) if images.is_dir() else [images]
    if not paths:
        raise DerainError.about(images, "no images found")
    try:
        written = preview_grid(paths, preset or ["wide"], seed=seed, out_path=out, n=n, crop=crop)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    typer.echo(f"wrote {written}")


def _one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Report errors (and Ctrl-C) as one line and an exit code, as the other commands do."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        with fatal_errors(Reporter()):
            command(*args, **kwargs)

    return wrapper


def register(app: typer.Typer) -> None:
    """Add the training commands to ``app``."""
    app.command("train")(_one_line_errors(train_command))
    app.command("rain-preview", cls=PlainUsage)(_one_line_errors(rain_preview_command))
