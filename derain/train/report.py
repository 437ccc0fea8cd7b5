"""What a run leaves for people to read: a CSV log, a plot of the curves, sample grids."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_write

__all__ = ["CsvLog", "plot_curves", "sample_grid"]


class CsvLog:
    """Append-only CSV with a fixed header; rows may leave columns empty."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = list(columns)
        if not path.exists():
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(self.columns)

    def write(self, **row: float | int | str) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self.columns])
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, step: int) -> None:
        """Drop rows past ``step`` (left by a run that was killed after its last checkpoint).

        The log is rewritten atomically, and one that a kill left empty or header-less is
        given its header back, so a resume can always go on.
        """
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        kept = [r for r in rows if r and r[0].isdigit() and int(r[0]) <= step]

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows([self.columns, *kept])

        atomic_write(self.path, write)


def plot_curves(log_path: Path, out_path: Path) -> None:
    """Plot training loss and validation PSNR/SSIM from the CSV log into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(
        axes,
        ("loss", "val_psnr", "val_ssim"),
        ("training loss", "val PSNR (dB)", "val SSIM"),
        strict=True,
    ):
        xs, ys = series(key)
        ax.plot(xs, ys, marker="o" if key != "loss" else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def sample_grid(rows: Sequence[Sequence[np.ndarray]], out_path: Path, height: int = 160) -> None:
    """Save rows of uint8 RGB images (e.g. rainy | derained | clean) side by side as a PNG."""
    gap = 4
    scaled = [
        [
            Image.fromarray(im).resize((max(1, im.shape[1] * height // im.shape[0]), height))
            for im in row
        ]
        for row in rows
    ]
    width = max(sum(im.width for im in row) + gap * (len(row) - 1) for row in scaled)
    canvas = Image.new("RGB", (width, len(scaled) * (height + gap) - gap), "white")
    for r, row in enumerate(scaled):
        x = 0
        for im in row:
            canvas.paste(im, (x, r * (height + gap)))
            x += im.width + gap
    atomic_write(out_path, lambda tmp: canvas.save(tmp, format="PNG"))
