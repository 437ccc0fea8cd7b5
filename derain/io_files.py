"""Image files in and out: finding inputs, naming outputs, and writing them atomically.

An output is written to a hidden temp file in its own folder, flushed to disk and moved into
place with :func:`os.replace`, so an interrupted run never leaves a truncated image behind and
running it again can skip every output that exists.
"""

from __future__ import annotations

import errno
import glob
import io
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

import numpy as np
from PIL import Image

from .atomic import atomic_write
from .errors import OutputError
from .imaging import gray_range, open_image
from .record import RECORD_PREFIX, RunRecord
from .suffixes import IMAGE_SUFFIXES, is_image_name, is_input_name, is_video_name

__all__ = [
    "IMAGE_SUFFIXES",
    "MADE_BY_PREFIX",
    "Files",
    "InputFile",
    "LocalFiles",
    "check_writable",
    "derained_path",
    "encode_image",
    "encode_output",
    "expand_inputs",
    "format_for_path",
    "has_glob",
    "is_image_name",
    "iter_images",
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
    "GIF": ("P", "L", "RGB"),
    "PNG": ("RGB", "RGBA", "L", "LA", "P", "1", "I;16", "I;16B", "I"),
}
# Deep grey (16-bit, 32-bit integer, float) modes: those a format stores as they are. Others
# are rescaled (see imaging.gray_range) to 16-bit grey in PNG and to 8-bit grey elsewhere,
# never clipped, which turned a 16-bit photo solid white.
_DEEP_GRAY = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_DEEP_KEPT = {"TIFF": _DEEP_GRAY, "PNG": frozenset({"I;16", "I;16B", "I"})}
_SIXTEEN_BIT_FORMATS = frozenset({"PNG"})


@dataclass(frozen=True)
class InputFile:
    """One image to process.

    Attributes:
        path: the file.
        relative: where its output goes below an output folder (mirrors the input tree).
    """

    path: Path
    relative: Path


def has_glob(spec: str) -> bool:
    """Whether ``spec`` holds glob wildcards (``*``, ``?`` or ``[``)."""
    return any(c in spec for c in "*?[")


def iter_images(root: Path, recursive: bool, exclude: Path | None = None) -> Iterator[Path]:
    """Image and video files under ``root`` in sorted order.

    Symlinked folders are followed, but each real folder is visited once, so a link loop ends.

    Args:
        root: the folder to walk.
        recursive: also walk subfolders.
        exclude: a subfolder to leave out (an output folder inside the input tree).
    """
    seen: set[tuple[int, int]] = set()
    skip = exclude.resolve() if exclude is not None else None
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        st = here.stat()
        excluded = skip is not None and here != root and here.resolve() == skip
        if (st.st_dev, st.st_ino) in seen or excluded:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in sorted(files):
            path = here / name
            if is_input_name(path) and path.is_file():
                yield path


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (a symlink loop, a dangling link…), or ``None``."""
    try:
        st = path.stat()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None if stat.S_ISREG(st.st_mode) else "not a regular file"


def _glob_base(spec: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard."""
    parts = Path(spec).parts
    first_magic = next(i for i, part in enumerate(parts) if has_glob(part))
    return Path(*parts[:first_magic]) if first_magic else Path(".")


def expand_inputs(
    specs: Sequence[str], recursive: bool, exclude: Path | None = None
) -> tuple[list[InputFile], list[str]]:
    """Turn command-line paths, folders and glob patterns into a list of images.

    A folder mirrors its tree below the output folder; a glob mirrors the part after its
    fixed prefix; a plain file goes to the top.

    Args:
        specs: the paths as typed (quoted globs are expanded here, ``**`` included).
        recursive: walk folders recursively.
        exclude: a folder never to read from (the output folder).

    Returns:
        The images, and one error line per argument that yields nothing.
    """
    found: list[InputFile] = []
    errors: list[str] = []

    def add_folder(folder: Path, prefix: Path) -> int:
        images = list(iter_images(folder, recursive, exclude))
        found.extend(InputFile(p, prefix / p.relative_to(folder)) for p in images)
        return len(images)

    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            if not add_folder(path, Path()):
                errors.append(f"{spec}: no image files in this folder")
        elif path.is_file():
            found.append(InputFile(path, Path(path.name)))
        elif has_glob(spec):
            base, count = _glob_base(spec), 0
            for match in sorted(glob.glob(spec, recursive=True)):
                p = Path(match)
                rel = p.relative_to(base) if p.is_relative_to(base) else Path(p.name)
                if p.is_dir():
                    count += add_folder(p, rel)
                elif is_input_name(p):
                    problem = _unreadable(p)
                    if problem:  # a symlink loop or a dangling link: this file only
                        errors.append(f"{p}: {problem}")
                    else:
                        found.append(InputFile(p, rel))
                    count += 1
            if not count:
                errors.append(f"{spec}: pattern matches no image files")
        else:
            errors.append(f"{spec}: no such file or folder")
    return found, errors


def derained_path(path: Path) -> Path:
    """The default output name: ``<stem>_derained<ext>`` beside the input."""
    return path.with_name(f"{path.stem}_derained{path.suffix}")


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
        raise OutputError(
            f"{path}: no suffix to tell the image format; add one (.png, .jpg, .webp, .tif)"
            " or end a folder name with /"
        )
    raise OutputError(
        f"{path}: cannot write the {path.suffix} format; use .png, .jpg, .webp or .tif"
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
    hold a record. A video's record is read from its container (:func:`derain.video.read_made_by`).
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
    image: Image.Image,
    out: IO[bytes],
    fmt: str,
    quality: int,
    icc_profile: bytes | None,
    exif: Image.Exif | bytes | None,
    made_by: str | None = None,
) -> None:
    image = _storable(image, fmt)
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
    image.save(out, format=fmt, **options)


def encode_image(
    image: Image.Image,
    fmt: str,
    quality: int = 95,
    *,
    icc_profile: bytes | None = None,
    exif: Image.Exif | bytes | None = None,
    made_by: str | None = None,
) -> bytes:
    """Encode an image in memory: stdout, uploads and output files (:func:`encode_output`)."""
    buf = io.BytesIO()
    _save(image, buf, fmt, quality, icc_profile, exif, made_by)
    return buf.getvalue()


def encode_output(
    image: Image.Image,
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
        raise OutputError(f"{path}: Pillow cannot write the {fmt} format")
    try:
        return encode_image(image, fmt, quality, **meta)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputError(f"{path}: cannot write ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def check_writable(path: str | os.PathLike[str]) -> None:
    """Check, before any work, that ``path`` could be written (its folder made if missing).

    Raises:
        OutputError: one line naming ``path``: a folder on the way is a file, or the nearest
            existing folder is not writable (permissions, a read-only file system).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: cannot write (is a directory)")
    for folder in (path.parent, *path.parent.parents):
        if not os.path.lexists(folder):
            continue
        if not folder.is_dir():
            raise OutputError(f"{path}: cannot write ({os.strerror(errno.ENOTDIR)}: {folder})")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{path}: cannot write ({os.strerror(errno.EACCES)}: {folder})")
        return


def write_image_atomic(
    image: Image.Image,
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
        image: the picture.
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
        raise OutputError(f"{path}: cannot write ({_reason(exc)})") from exc


class Files(Protocol):
    """Where a run reads its inputs and writes its outputs: local paths (:class:`LocalFiles`)
    or a pyarrow file system (:class:`derain.arrow_files.ArrowFiles`)."""

    def name(self, path: Path) -> str:
        """How messages name ``path``."""
        ...

    def open_image(self, path: Path) -> Image.Image:
        """The image at ``path``, read with :func:`derain.imaging.open_image`."""
        ...

    def write_image(self, image: Image.Image, path: Path, quality: int = 95, **meta: Any) -> object:
        """Write an output, complete or not at all; ``meta``: the keywords ``format``,
        ``icc_profile``, ``exif`` and ``made_by`` of :func:`write_image_atomic`."""
        ...

    def read_made_by(self, path: Path) -> str | None:
        """What made the output at ``path`` (see :func:`read_made_by`)."""
        ...

    def exists(self, path: Path) -> bool:
        """Whether ``path`` exists."""
        ...

    def place(self, path: Path) -> tuple[str, str]:
        """Where ``path`` is (a file system, a key in it): two names of one file, one place.

        Raises:
            OSError: the path cannot be resolved (a link loop).
        """
        ...

    def check_writable(self, path: Path) -> None:
        """Raise :class:`OutputError` if ``path`` cannot be written, as far as can be told."""
        ...


class LocalFiles:
    """Files on local paths (or a shared file system mounted on every worker): this module's
    own reader, writer and checks."""

    open_image = staticmethod(open_image)
    read_made_by = staticmethod(read_made_by)
    check_writable = staticmethod(check_writable)

    def name(self, path: Path) -> str:
        """See :meth:`Files.name`."""
        return str(path)

    def write_image(self, image: Image.Image, path: Path, quality: int = 95, **meta: Any) -> Path:
        """See :meth:`Files.write_image` (:func:`write_image_atomic`)."""
        return write_image_atomic(image, path, quality, **meta)

    def exists(self, path: Path) -> bool:
        """See :meth:`Files.exists`."""
        return path.exists()

    def place(self, path: Path) -> tuple[str, str]:
        """See :meth:`Files.place`."""
        return "local", str(Path(path).resolve())
