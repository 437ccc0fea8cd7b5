"""Make the README's before/after figure from the bundled example and the shipped weights.

python examples/make_before_after.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from derain import Deraining
from derain.io_files import write_image_atomic

HERE = Path(__file__).resolve().parent
GAP = 8


def main() -> None:
    rainy = Image.open(HERE / "rocket_rain.png").convert("RGB")
    derained = Deraining("danet").run(rainy)
    canvas = Image.new("RGB", (2 * rainy.width + GAP, rainy.height + 28), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (image, label) in enumerate(((rainy, "rainy input"), (derained, "derain (danet)"))):
        x = i * (rainy.width + GAP)
        canvas.paste(image, (x, 28))
        draw.text((x + 6, 8), label, fill="black")
    write_image_atomic(canvas, HERE / "before_after.jpg", quality=88)
    print(f"wrote {HERE / 'before_after.jpg'}")


if __name__ == "__main__":
    main()
