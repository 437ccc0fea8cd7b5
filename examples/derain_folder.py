"""Derain every image of a folder with numpy arrays, keeping going past bad files.

For everyday use the command line does this (and more): `derain photos/ -o clean/ -r`.

    python examples/derain_folder.py photos/ clean/
"""

from __future__ import annotations

import sys
from pathlib import Path

from derain import DerainError, Deraining
from derain.io import write_image_atomic


def main(src: str, dst: str) -> None:
    derain = Deraining("danet")
    out_dir = Path(dst)
    for path in sorted(Path(src).glob("*")):
        if not path.is_file():
            continue
        try:
            image = derain.run(path)  # path in, PIL image out (EXIF orientation applied)
            write_image_atomic(image, out_dir / path.name)
        except DerainError as exc:  # one line naming the file; the batch goes on
            print(f"skipped: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
