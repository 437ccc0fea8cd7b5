"""16-bit RGB and RGBA PNG files, which Pillow reads and writes only in 8 bits.

Pillow opens a 48- or 64-bit PNG as 8-bit ``RGB``/``RGBA`` and has no mode to write one, so
these files go through FFmpeg's PNG codec (PyAV, the ``video`` extra, also in ``serve``):
:func:`read` decodes the pixels as uint16, :func:`encode` writes them back with the EXIF
(which carries the run record) and the colour profile. The pixels ride along on the 8-bit
Pillow image in ``info[RGB16_KEY]``, so every reader and writer keeps passing one image.
Without PyAV the image is read in 8 bits, with a warning.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np

from ..errors import DerainWarning, ImageError, first_line

__all__ = ["RGB16_KEY", "encode", "is_deep_rgb_png", "read"]

#: The ``Image.info`` key that holds the uint16 H×W×3 (or ×4) pixels of a 16-bit RGB PNG.
RGB16_KEY = "derain.rgb16"

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types with three colour channels: truecolour (2) and truecolour + alpha (6).
_COLOUR_TYPES = {2: "rgb48be", 6: "rgba64be"}
_BIT_DEPTH_AT, _COLOUR_TYPE_AT = 24, 25  # in the IHDR chunk, which comes first
_INSTALL_HINT = 'pip install "derain[video]"'


def is_deep_rgb_png(head: bytes) -> bool:
    """Whether a file starting with ``head`` (at least 26 bytes) is a 16-bit RGB(A) PNG."""
    return (
        head.startswith(_SIGNATURE)
        and head[12:16] == b"IHDR"
        and len(head) > _COLOUR_TYPE_AT
        and head[_BIT_DEPTH_AT] == 16
        and head[_COLOUR_TYPE_AT] in _COLOUR_TYPES
    )


def read(data: bytes, name: str) -> np.ndarray | None:
    """The uint16 pixels (H×W×3 or H×W×4) of a 16-bit RGB(A) PNG, or ``None`` without PyAV.

    Raises:
        ImageError: FFmpeg cannot decode the file.
    """
    try:
        import av
    except ImportError:
        warnings.warn(
            f"{name}: 16-bit RGB PNG read in 8 bits; {_INSTALL_HINT} keeps 16 bits",
            DerainWarning,
            stacklevel=3,
        )
        return None
    fmt = _COLOUR_TYPES[data[_COLOUR_TYPE_AT]].replace("be", "le")
    try:
        with av.open(io.BytesIO(data), format="png_pipe") as container:
            frame = next(container.decode(video=0))
            return np.ascontiguousarray(frame.to_ndarray(format=fmt))
    except (av.FFmpegError, StopIteration, ValueError) as exc:
        raise ImageError.about(name, f"cannot read 16-bit PNG ({first_line(exc)})") from None


def encode(
    pixels: np.ndarray, exif: bytes | None = None, icc_profile: bytes | None = None
) -> bytes:
    """A 16-bit PNG of uint16 H×W×3 or H×W×4 ``pixels``, with EXIF and colour profile chunks."""
    import av

    height, width, channels = pixels.shape
    fmt = "rgb48" if channels == 3 else "rgba64"
    context = av.CodecContext.create("png", "w")
    context.width, context.height, context.pix_fmt = width, height, f"{fmt}be"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels, np.uint16), f"{fmt}le")
    packets = [*context.encode(frame.reformat(format=f"{fmt}be")), *context.encode(None)]
    png = b"".join(bytes(p) for p in packets)
    extra = b""
    if icc_profile:
        extra += _chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile))
    if exif:
        extra += _chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    ihdr_end = len(_SIGNATURE) + 8 + 13 + 4  # length, type, 13 data bytes, CRC
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
