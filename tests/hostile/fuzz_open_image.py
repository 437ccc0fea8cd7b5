"""Fuzz the image-loading path with atheris: ``open_image`` + ``decode`` may only raise ImageError.

Run as a script (atheris is in the ``dev`` extra on Linux)::

    python tests/hostile/fuzz_open_image.py [ITERATIONS] [libFuzzer flags...]

It seeds libFuzzer with small valid PNG, JPEG, GIF, TIFF, BMP and WebP files (plus any corpus
folders passed as flags) and mutates them, coverage-guided through Pillow's Python plugins.
Any exception other than :class:`derain.errors.ImageError`, or a warning from ``decode``, is
a crash: libFuzzer prints it, saves the input as ``crash-*`` and the script exits non-zero.
Pillow's decompression-bomb limit is lowered to one megapixel so that a mutated header cannot
make an iteration allocate gigabytes. libFuzzer ends the process without Python's clean-up, so
the grown corpus stays in ``$TMPDIR/derain-fuzz-*/seeds`` (pass it as a flag to go on from it).
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import atheris
import numpy as np
import torch  # noqa: F401  (imported first so that only Pillow and derain get instrumented)

with atheris.instrument_imports(include=["PIL", "derain"]):
    from PIL import Image

    from derain.errors import ImageError
    from derain.io.imaging import decode, open_image

Image.MAX_IMAGE_PIXELS = 1 << 20
_SCRATCH = Path(tempfile.mkdtemp(prefix="derain-fuzz-")) / "input"
atexit.register(shutil.rmtree, _SCRATCH.parent, ignore_errors=True)  # if Python ends it


def seed_files() -> dict[str, bytes]:
    """Small valid files of every format and several modes, as the fuzzer's starting points."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    cases: dict[str, tuple[Image.Image, str, dict[str, object]]] = {
        "rgb.png": (rgb, "PNG", {}),
        "la.png": (rgb.convert("LA"), "PNG", {}),
        "p.png": (rgb.convert("P"), "PNG", {"transparency": 0}),
        "i16.png": (rgb.convert("I;16"), "PNG", {}),
        "exif.jpg": (rgb, "JPEG", {"exif": exif.tobytes()}),
        "cmyk.jpg": (rgb.convert("CMYK"), "JPEG", {}),
        "anim.gif": (rgb.convert("P"), "GIF", {"save_all": True, "append_images": [rgb]}),
        "f.tif": (rgb.convert("F"), "TIFF", {}),
        "rgba.tif": (rgb.convert("RGBA"), "TIFF", {"compression": "tiff_lzw"}),
        "l.bmp": (rgb.convert("L"), "BMP", {}),
        "rgb.webp": (rgb, "WEBP", {}),
    }
    out = {}
    for name, (image, fmt, options) in cases.items():
        buf = io.BytesIO()
        image.save(buf, format=fmt, **options)
        out[name] = buf.getvalue()
    return out


def test_one_input(data: bytes) -> None:
    _SCRATCH.write_bytes(data)
    try:
        image = open_image(_SCRATCH)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning would print lines past the one-line error
            decode(image, "input")
    except ImageError as exc:
        assert "\n" not in str(exc), str(exc)


def main(argv: list[str]) -> None:
    iterations = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 10_000
    flags = [a for a in argv[1:] if not a.isdigit()]
    seeds = _SCRATCH.parent / "seeds"
    seeds.mkdir()
    for name, data in seed_files().items():
        (seeds / name).write_bytes(data)
    # -rss_limit_mb: a 1 MP limit keeps every decode far below it; a leak would not be. One CI
    # run on a loaded machine reached 1.9 GB (torch and its allocator included), so 4 GB.
    args = [argv[0], f"-runs={iterations}", "-rss_limit_mb=4096", "-max_len=4096", *flags]
    atheris.Setup([*args, str(seeds)], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(sys.argv)
