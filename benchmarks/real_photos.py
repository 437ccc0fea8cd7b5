"""No-reference look at real rainy photos: several models side by side, and three statistics.

Real rain has no ground truth, so this script measures what can be measured without one, per
photo and averaged: how much brightness a model took away (rain is additive), the mean
absolute horizontal difference of the luminance (vertical streaks live there; so does
texture, so lower is only better while the picture stays sharp), and the contrast (standard
deviation of the luminance; a rise means the model also lifted a veil or darkened the photo).
It also writes, per photo, a 1:1 centre crop of the input beside each model's output, to look
at: the numbers only say where to look.

Run:
    python benchmarks/real_photos.py ../shared/data/real -m danet -m danet-plus \\
        -m runs/my-run/best --out /tmp/real-photos

Writes ``<out>/<photo>.png`` (the crops) and ``<out>/real_photos.json`` (the statistics).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from derain.imaging import open_image
from derain.inference import Deraining
from derain.io_files import iter_images, write_image_atomic

CROP = (420, 300)  # width, height of the 1:1 crops
LABEL_H = 14  # pixels above each crop for its label
STATS = ("removed", "horizontal_detail", "contrast")


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Mean of R, G and B of an (H, W, 3) float image."""
    return rgb.mean(axis=2)


def photo_stats(rainy: np.ndarray, out: np.ndarray | None = None) -> dict[str, float]:
    """The three statistics of one output (of the input itself when ``out`` is None)."""
    img = rainy if out is None else out
    y = luminance(img)
    return {
        "removed": 0.0 if out is None else float(np.mean(rainy - out)),
        "horizontal_detail": float(np.abs(np.diff(y, axis=1)).mean()),
        "contrast": float(y.std()),
    }


def side_by_side(images: list[Image.Image], labels: list[str]) -> Image.Image:
    """Centre crops of equally sized images in a row, each labelled above."""
    w, h = images[0].size
    cw, ch = min(CROP[0], w), min(CROP[1], h)
    x, y = (w - cw) // 2, (h - ch) // 2
    grid = Image.new("RGB", (cw * len(images), ch + LABEL_H), "white")
    draw = ImageDraw.Draw(grid)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        grid.paste(image.crop((x, y, x + cw, y + ch)), (i * cw, LABEL_H))
        draw.text((i * cw + 4, 1), label, fill="black")
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, help="Folder of real rainy photos.")
    parser.add_argument(
        "-m", "--model", action="append", required=True, help="Name, hub id or path; repeat."
    )
    parser.add_argument("--out", type=Path, default=Path("real-photos"))
    args = parser.parse_args()

    paths = sorted(iter_images(args.photos, recursive=True))
    args.out.mkdir(parents=True, exist_ok=True)
    runners = {name: Deraining(name) for name in args.model}
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for path in paths:
        rainy_img = open_image(path).convert("RGB")
        rainy = np.asarray(rainy_img, dtype=np.float32) / 255
        outputs = [runner.run(rainy_img) for runner in runners.values()]
        rows[path.stem] = {"input": photo_stats(rainy)} | {
            name: photo_stats(rainy, np.asarray(out, dtype=np.float32) / 255)
            for name, out in zip(runners, outputs, strict=True)
        }
        grid = side_by_side([rainy_img, *outputs], ["input", *runners])
        write_image_atomic(grid, args.out / f"{path.stem}.png")
        print(path.name, "done", flush=True)

    columns = ["input", *runners]
    means = {
        col: {s: round(float(np.mean([r[col][s] for r in rows.values()])), 4) for s in STATS}
        for col in columns
    }
    report = {"photos": len(rows), "mean": means, "per_photo": rows}
    (args.out / "real_photos.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n| weights | {' | '.join(STATS)} |\n|---|{'---|' * len(STATS)}")
    for col in columns:
        print(f"| {col} | " + " | ".join(f"{means[col][s]:.4f}" for s in STATS) + " |")


if __name__ == "__main__":
    main()
