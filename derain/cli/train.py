"""`derain train` and `derain rain-preview` (registered on the main app)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the training commands to ``app``."""
