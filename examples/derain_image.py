"""Derain one image with the shipped weights and save the result beside it.

python examples/derain_image.py examples/rocket_rain.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from derain import Deraining


def main(path: str) -> None:
    derain = Deraining("danet")  # weights inside the package: no download
    result = derain.run(path, return_layers=True)
    src = Path(path)
    result.image.save(src.with_name(f"{src.stem}_derained.png"))
    result.rain.save(src.with_name(f"{src.stem}_rain.png"))  # what was removed
    print(f"wrote {src.stem}_derained.png and {src.stem}_rain.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_name("rocket_rain.png")))
