"""Writing outputs: the format a name asks for, encoding with colour profile, EXIF and the
run record, and writing atomically.

An output is written to a hidden temp file in its own folder, flushed to disk and moved into
place with :func:`os.replace`, so an interrupted run never leaves a truncated image behind and
running it again can skip every output that exists.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
from PIL import Image

from ..atomic import atomic_write
from ..errors import OutputError, UnwritableFolder
from ..record import RECORD_PREFIX, RunRecord
from . import png16
from .animation import Animation, save_frames
from .imaging import gray_range
from .suffixes import is_video_name

__all__ = [
    "MADE_BY_PREFIX",
    "check_writable",
    "encode_image",
    "encode_output",
    "format_for_path",
    "output_format",
    "read_made_by",
    "write_image_atomic",
]

_ORIENTATION = 0x0112


_SOFTWARE = 0x0131


#: How a record of what made an output starts (see :mod:`derain.record`).
MADE_BY_PREFIX = RECORD_PREFIX


_QUALITY_FORMATS = frozenset({"JPEG", "WEBP"})


_META_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF"})  # formats that carry ICC and EXIF


# Modes each format can store; anything else is converted to the first entry.
_FORMAT_MODES = {
    "JPEG": ("RGB", "L", "CMYK"),
    "BMP": ("RGB", "RGBA", "L", "P", "1"),
    "PPM": ("RGB", "L", "1"),
    "GIF": ("P", "L", "RGB", "RGBA"),  # Pillow keeps RGBA transparency as a palette entry
    "PNG": ("RGB", "RGBA", "L", "LA", "P", "1", "I;16", "I;16B", "I"),
}


# Deep grey (16-bit, 32-bit integer, float) modes: those a format stores as they are. Others
# are rescaled (see imaging.gray_range) to 16-bit grey in PNG and to 8-bit grey elsewhere,
# never clipped, which turned a 16-bit photo solid white.
_DEEP_GRAY = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


_DEEP_KEPT = {"TIFF": _DEEP_GRAY, "PNG": frozenset({"I;16", "I;16B", "I"})}


_SIXTEEN_BIT_FORMATS = frozenset({"PNG"})


def format_for_path(path: Path) -> str | None:
    """The Pillow format that writes ``path``'s suffix, or ``None`` if there is none."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    return fmt if fmt in Image.SAVE else None


def output_format(path: Path) -> str:
    """The format ``path``'s name asks for.

    Raises:
        OutputError: one line naming ``path`` when its suffix names no format Pillow writes.
    """
    fmt = format_for_path(path)
    if fmt is not None:
        return fmt
    if not path.suffix:
        raise OutputError.about(
            path,
            "no suffix to tell the image format; add one (.png, .jpg, .webp, .tif)"
            " or end a folder name with /",
        )
    raise OutputError.about(
        path, f"cannot write the {path.suffix} format; use .png, .jpg, .webp or .tif"
    )


def _exif_bytes(exif: Image.Exif | bytes | None, made_by: str | None = None) -> bytes | None:
    """EXIF with orientation reset to 1 (the pixels were turned upright on reading) and
    ``made_by`` as its Software tag. The caller's EXIF object is not changed."""
    parsed = Image.Exif()
    if exif is not None:
        try:  # a copy through bytes keeps the sub-IFDs (camera settings, GPS)
            parsed.load(exif if isinstance(exif, bytes) else exif.tobytes())
        except Exception:  # a broken EXIF block is dropped, not the image
            parsed = Image.Exif()
    if made_by:
        parsed[_SOFTWARE] = made_by
    if not len(parsed):
        return None
    # Written even where reading dropped the tag, so no viewer rotates the upright pixels again.
    parsed[_ORIENTATION] = 1
    return parsed.tobytes()


def read_made_by(path: str | os.PathLike[str] | BinaryIO) -> str | None:
    """What an earlier run recorded as having made ``path`` (see ``made_by`` of
    :func:`write_image_atomic`), or ``None`` if the file holds no such record.

    Only the header is read (``path`` may be a seekable binary file). BMP and PPM files cannot
    hold a record. A video's record is read from its container
    (:func:`derain.io.video.read_made_by`).
    """
    if isinstance(path, (str, os.PathLike)) and is_video_name(Path(path)):
        from .video import read_made_by as read_video_record

        return read_video_record(path)
    try:
        with Image.open(path) as im:
            text = im.info.get("comment") if im.format == "GIF" else im.getexif().get(_SOFTWARE)
    except Exception:  # an unreadable output has no record; it is redone or skipped as before
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if isinstance(text, str) and RunRecord.is_record(text) else None


def _storable(image: Image.Image, fmt: str) -> Image.Image:
    """``image`` in a mode ``fmt`` can store; deep grey is rescaled, never clipped."""
    if image.mode in _DEEP_GRAY and image.mode not in _DEEP_KEPT.get(fmt, ()):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = gray_range(arr, image.mode)
        unit = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
        if fmt in _SIXTEEN_BIT_FORMATS:
            image = Image.fromarray(np.rint(unit * 65535).astype(np.uint16))
        else:
            image = Image.fromarray(np.rint(unit * 255).astype(np.uint8))
    modes = _FORMAT_MODES.get(fmt)
    if modes is None or image.mode in modes:
        return image
    return image.convert(modes[0])


def _save(
    image: Image.Image | Animation,
    out: IO[bytes],
    fmt: str,
    quality: int,
    icc_profile: bytes | None,
    exif: Image.Exif | bytes | None,
    made_by: str | None = None,
) -> None:
    if isinstance(image, Animation):
        frames = image.with_frames(_storable(f, fmt) for f in image.frames)
        save_frames(frames, out, fmt, _options(fmt, quality, icc_profile, exif, made_by))
        return
    deep = image.info.get(png16.RGB16_KEY)
    if fmt == "PNG" and isinstance(deep, np.ndarray) and deep.shape[:2] == image.size[::-1]:
        out.write(png16.encode(deep, _exif_bytes(exif, made_by), icc_profile))
        return
    image = _storable(image, fmt)
    image.save(out, format=fmt, **_options(fmt, quality, icc_profile, exif, made_by))


def _options(
    fmt: str,
    quality: int,
    icc_profile: bytes | None,
    exif: Image.Exif | bytes | None,
    made_by: str | None,
) -> dict[str, Any]:
    """Pillow's keywords for an output: quality, colour profile, EXIF with the record."""
    options: dict[str, Any] = {}
    if fmt in _QUALITY_FORMATS:
        options["quality"] = quality
    if fmt in _META_FORMATS:
        if icc_profile:
            options["icc_profile"] = icc_profile
        exif_data = _exif_bytes(exif, made_by)
        if exif_data:
            options["exif"] = exif_data
    elif fmt == "GIF" and made_by:
        options["comment"] = made_by
    return options


def encode_image(
    image: Image.Image | Animation,
    fmt: str,
    quality: int = 95,
    *,
    icc_profile: bytes | None = None,
    exif: Image.Exif | bytes | None = None,
    made_by: str | None = None,
) -> bytes:
    """Encode an image in memory: stdout, uploads and output files (:func:`encode_output`).

    An :class:`~derain.io.animation.Animation` keeps every frame, its timing and loop count
    in the formats that hold frames (GIF, WebP, PNG as APNG, TIFF pages); any other format
    refuses it with :class:`ValueError`.
    """
    buf = io.BytesIO()
    _save(image, buf, fmt, quality, icc_profile, exif, made_by)
    return buf.getvalue()


def encode_output(
    image: Image.Image | Animation,
    path: str | os.PathLike[str],
    quality: int = 95,
    *,
    format: str | None = None,
    **meta: Any,
) -> bytes:
    """The bytes of the output file ``path``: every writer of output files encodes here.

    Args:
        image, path, quality, format: as :func:`write_image_atomic` takes them.
        meta: ``icc_profile``, ``exif`` and ``made_by``, as :func:`write_image_atomic` takes
            them.

    Raises:
        OutputError: one line naming ``path``: no format Pillow writes, or encoding failed.
    """
    fmt = format or output_format(Path(path))
    if fmt not in Image.SAVE:
        raise OutputError.about(path, f"Pillow cannot write the {fmt} format")
    try:
        return encode_image(image, fmt, quality, **meta)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputError.about(path, f"cannot write ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def check_writable(path: str | os.PathLike[str]) -> None:
    """Check, before any work, that ``path`` could be written (its folder made if missing).

    Raises:
        UnwritableFolder: one line naming ``path``: a folder on the way is a file, or the
            nearest existing folder is not writable (permissions, a read-only file system).
        OutputError: ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError.about(path, "cannot write (is a directory)")
    for folder in (path.parent, *path.parent.parents):
        if not os.path.lexists(folder):
            continue
        problem = (
            errno.ENOTDIR
            if not folder.is_dir()
            else _unwritable(folder)
            if not os.access(folder, os.W_OK | os.X_OK)
            else None
        )
        if problem is not None:
            raise UnwritableFolder(path, folder, os.strerror(problem))
        return


def _unwritable(folder: Path) -> int:
    """Why a folder that refuses writes does: a read-only file system, or permissions."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): say permissions
        read_only = False
    return errno.EROFS if read_only else errno.EACCES


def write_image_atomic(
    image: Image.Image | Animation,
    path: str | os.PathLike[str],
    quality: int = 95,
    *,
    format: str | None = None,
    icc_profile: bytes | None = None,
    exif: Image.Exif | bytes | None = None,
    made_by: str | None = None,
) -> Path:
    """Write ``image`` to ``path`` so that the file is either complete or absent.

    The image is encoded into a hidden temp file in the same folder, fsynced and moved over
    ``path`` with :func:`os.replace`; on any error, KeyboardInterrupt included, the temp file
    is removed, and temp files of ``path`` left by a killed process are removed first.

    Args:
        image: the picture, or an :class:`~derain.io.animation.Animation` (GIF, WebP, PNG
            and TIFF keep every frame; other formats refuse it).
        path: destination; missing parent folders are created.
        quality: JPEG/WebP quality.
        format: Pillow format; by default the one the suffix names (a name with no known
            image format is refused).
        icc_profile: colour profile to embed where the format allows.
        exif: EXIF to embed where the format allows; its orientation is reset to 1.
        made_by: a record of what made the image (starting with ``"derain "``), kept as the
            EXIF Software tag (JPEG, PNG, WebP, TIFF) or the GIF comment; read it back with
            :func:`read_made_by`.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        OutputError: one line naming ``path`` when it cannot be written.
    """
    path = Path(path)
    data = encode_output(
        image,
        path,
        quality,
        format=format,
        icc_profile=icc_profile,
        exif=exif,
        made_by=made_by,
    )
    check_writable(path)

    def write(tmp: Path) -> None:
        with open(tmp, "xb") as f:
            f.write(data)

    try:
        return atomic_write(path, write)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError.about(path, f"cannot write ({_reason(exc)})") from exc
