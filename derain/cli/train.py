"""`derain train` and `derain rain-preview` (registered on the main app)."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import DerainError, UsageProblem
from .common import PlainUsage, Reporter, fatal_errors


def _overrides(**options: Any) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def train_command(
    data: Annotated[
        Path, typer.Option("--data", help="Paired folder, or clean photos with --synthetic.")
    ],
    synthetic: Annotated[
        str | None,
        typer.Option(
            help="Synthesise rain on the fly: wide (recommended), real, light, heavy or mix."
        ),
    ] = None,
    val: Annotated[
        list[Path] | None,
        typer.Option(help="Paired folder scored during training (repeat for several sets)."),
    ] = None,
    unlabelled: Annotated[
        Path | None,
        typer.Option(
            help="Real rainy photos without ground truth: distil the --teacher's outputs on "
            "them (a share of each batch, --set unlabelled_share=0.5)."
        ),
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(help="The model whose outputs on --unlabelled are the targets (danet-plus)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder.")] = None,
    recipe: Annotated[
        str, typer.Option(help="Named settings: paper, cpu, or cpu-continue (with --init).")
    ] = "paper",
    model: Annotated[
        str | None, typer.Option(help="Variant to train: danet or danet-plus.")
    ] = None,
    init: Annotated[
        str | None, typer.Option(help="Start from these weights (fine-tune): name, hub id or path.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Total optimisation steps.")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Total epochs (when --steps is unset).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Global batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    workers: Annotated[int | None, typer.Option(help="Data-loading processes.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the data and the initialisation.")
    ] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other setting as KEY=VALUE (repeatable)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from <out>/last.safetensors.")
    ] = False,
    resume_from: Annotated[
        Path | None, typer.Option(help="Continue from this checkpoint file.")
    ] = None,
    stop_at: Annotated[
        int | None, typer.Option(help="Stop after this step; the schedule still spans the run.")
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            help="Train for this long (90s, 8m, 1.5h), export included: the schedule is "
            "fitted to the steps that fit."
        ),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(help="Write the best weights here (model.safetensors + config.json)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    show_config: Annotated[
        bool, typer.Option("--show-config", help="Print the resolved settings and exit.")
    ] = False,
) -> None:
    """Train or fine-tune DANet (the paper's recipe by default)."""
    from ..train import apply_overrides, get_recipe, train
    from ..train.recipes import parse_duration

    try:
        cfg = get_recipe(recipe)
        cfg = apply_overrides(
            cfg,
            _overrides(
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
                time_budget=parse_duration(time_budget) if time_budget else None,
            ),
        )
        if time_budget and steps is None:  # the budget, not the recipe's steps, sets the length
            cfg = apply_overrides(cfg, {"steps": None})
        cfg = apply_overrides(cfg, setting or [])
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    if show_config:
        for field in dataclasses.fields(cfg):
            typer.echo(f"{field.name} = {getattr(cfg, field.name)!r}")
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
    from ..discovery import iter_images
    from ..train.synthetic import preview_grid

    paths = sorted(iter_images(images, recursive=True)) if images.is_dir() else [images]
    if not paths:
        raise DerainError(f"{images}: no images found")
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
