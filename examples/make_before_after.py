"""Make the README's before/after figure from the bundled examples and the shipped weights.

Two rows, light rain (``rocket_rain.png``) and a downpour (``rocket_heavy_rain.png``), each
labelled with its PSNR against ``rocket_clean.png`` (paper protocol, fp32 weights).

    python examples/make_before_after.py [--model danet]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from derain import Deraining
from derain.io import write_image_atomic
from derain.scoring.metrics import score_pair

HERE = Path(__file__).resolve().parent
GAP = 8
LABEL_HEIGHT = 28
ROWS = (("rocket_rain.png", "light rain"), ("rocket_heavy_rain.png", "downpour"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="danet", help="model source (default: danet)")
    args = parser.parse_args()

    derain = Deraining(args.model, dtype="fp32")
    clean = Image.open(HERE / "rocket_clean.png").convert("RGB")
    width, height = clean.size
    row_height = height + LABEL_HEIGHT
    canvas = Image.new("RGB", (2 * width + GAP, len(ROWS) * row_height), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (name, kind) in enumerate(ROWS):
        rainy = Image.open(HERE / name).convert("RGB")
        derained = derain.run(rainy)
        panels = (
            (rainy, f"{kind}: input, {score_pair(rainy, clean).psnr:.2f} dB"),
            (derained, f"derain ({args.model}), {score_pair(derained, clean).psnr:.2f} dB"),
        )
        for col, (image, label) in enumerate(panels):
            x, y = col * (width + GAP), row * row_height
            canvas.paste(image, (x, y + LABEL_HEIGHT))
            draw.text((x + 6, y + 8), label, fill="black")
            print(f"{name}: {label}")
    write_image_atomic(canvas, HERE / "before_after.jpg", quality=88)
    print(f"wrote {HERE / 'before_after.jpg'}")


if __name__ == "__main__":
    main()
