"""``derain models``: the registered variants, their size, cost, weights and scores."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ..models import DANet, get_model_info, list_models
from ..models.registry import DEFAULT_MODEL, VALIDATION_SETS, ModelInfo
from ..models.sources import shipped_file

TABLE_WIDTH = 140
HELP = """List the models: parameters, MACs at 512×512, where the weights come from, scores."""


def _weights_source(info: ModelInfo) -> str:
    w = info.weights
    shipped = shipped_file(info).is_file()
    parts = [
        "shipped" if shipped else "not shipped",
        "sha256 ✓" if w.sha256 else "no sha256",  # load_shipped refuses a file without one
    ]
    return "; ".join(parts)


def _score(info: ModelInfo, validation_set: str) -> str:
    score = info.weights.score(validation_set)
    return "—" if score is None else f"{score.psnr:.2f} / {score.ssim:.4f}"


def models() -> None:
    """Print the table of registered models."""
    table = Table(
        title="derain models",
        caption="GMACs: the paper's figures at 512×512. Scores: PSNR (dB) / SSIM, Y channel, "
        "fp32. Real rain left: mean over 21 real rainy photos (derain eval --real; lower "
        "is better). s/MP: seconds per megapixel on a 2-core CPU, bf16. * the default.",
    )
    table.add_column("model", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("GMACs", justify="right", no_wrap=True)
    table.add_column("weights")
    for validation_set in VALIDATION_SETS:
        table.add_column(validation_set, justify="right", no_wrap=True)
    table.add_column("real rain left", justify="right", no_wrap=True)
    table.add_column("s/MP", justify="right", no_wrap=True)
    for name in list_models():
        info = get_model_info(name)
        # Counted from a freshly built network, so the table cannot drift from the code.
        params = sum(p.numel() for p in DANet(info.config).parameters())
        w = info.weights
        table.add_row(
            f"{name} *" if name == DEFAULT_MODEL else name,
            f"{params:,}",
            f"{info.paper_gmacs_512:.1f}",
            _weights_source(info),
            *(_score(info, v) for v in VALIDATION_SETS),
            "—" if w.real_rain_left is None else f"{w.real_rain_left:.3f}",
            "—" if w.seconds_per_mp is None else f"{w.seconds_per_mp:.2f}",
        )
    # The table needs about 100 columns; a narrower console (or a pipe) gets it unwrapped.
    console = Console()
    Console(width=max(console.width, TABLE_WIDTH)).print(table)


def register(app: typer.Typer) -> None:
    """Add ``models`` to ``app``."""
    app.command("models", help=HELP)(models)
