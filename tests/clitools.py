"""Helpers for the command-line tests: run the app in-process, make images, read errors."""

from __future__ import annotations

import io
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner, Result

from derain.cli import app, with_default_verb


def cli(*args: str | Path, stdin: bytes | None = None) -> Result:
    """Invoke the app as the console script does, default verb included."""
    return CliRunner().invoke(app, with_default_verb([str(a) for a in args]), input=stdin)


def one_error_line(result: Result) -> str:
    """The single ``derain: error: ...`` line a failed command printed."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("derain: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def interruptible() -> None:
    """``preexec_fn`` for a child process a test interrupts with SIGINT (Ctrl-C).

    A suite started in the background without job control (``bash .ci/run &``) inherits
    SIGINT ignored, and a Python child that starts with SIGINT ignored raises no
    KeyboardInterrupt; the default disposition gives the child what a terminal user's has.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_image(path: str | Path, h: int = 24, w: int = 32, seed: int = 0, **save: object) -> Path:
    """A random RGB image written to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, **save)
    return path


def rgb48_png(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of uint16 H×W×3 ``pixels``, built by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_depth_and_pixels(data: bytes) -> tuple[int, np.ndarray]:
    """A PNG's IHDR bit depth and its RGB pixels as uint16 (decoded by FFmpeg, through PyAV)."""
    import av

    with av.open(io.BytesIO(data), format="png_pipe") as container:
        frame = next(container.decode(video=0))
        return data[24], frame.to_ndarray(format="rgb48le")
