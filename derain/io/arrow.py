"""Image files on pyarrow file systems (``s3://``, ``gs://``, ``hdfs://``, ``file://``...).

Ray jobs (:mod:`derain.ray_batch`) read inputs from and write outputs to any file system that
:meth:`pyarrow.fs.FileSystem.from_uri` resolves, or one given as an object (an fsspec file
system wrapped in :class:`pyarrow.fs.PyFileSystem`, an S3 file system with its own endpoint
and keys). :class:`ArrowFiles` does what :class:`derain.io.files.LocalFiles` does for local
paths, with the same reader (:func:`derain.io.imaging.open_frames`) and the same encoder
(:func:`derain.io.writing.encode_output`):

- Every output is encoded in memory first, then written in one stream.
- On the local file system (``file://``) the local atomic writer is used as it is (temp
  file, fsync, rename). On other file systems that can rename (HDFS) the bytes go to a hidden
  temp name in the output's folder that is then moved into place.
- On object stores (S3, GCS, and any other file system) an object becomes visible only when
  its upload completes, when the stream is closed: a worker killed before that leaves no
  object, so no temp name is needed (and renaming an object would be a second full copy).

Needs pyarrow (``pip install "derain[ray]"``).
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..atomic import temp_path
from ..errors import DerainError, ImageError, OutputError, first_line
from ..record import input_identity
from .animation import Animation
from .discovery import InputFile
from .imaging import frame_count, open_frames
from .suffixes import is_input_name
from .writing import check_writable, encode_output, read_made_by, write_image_atomic

__all__ = ["ArrowFiles", "is_uri", "list_images", "resolve"]

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: File systems whose paths are this machine's own (written with the local atomic writer).
_LOCAL = "local"
#: Other file systems where a file can be moved into place in one step.
_RENAMING = frozenset({"hdfs"})
#: How messages name files on object stores (by ``type_name``): scheme + bucket and key.
_SCHEMES = {"s3": "s3://", "gcs": "gs://", "abfs": "abfs://"}


def is_uri(spec: str) -> bool:
    """Whether ``spec`` is a URI with a scheme (``s3://...``), not a local path."""
    return _URI.match(spec) is not None


def _pyarrow_fs() -> Any:
    try:
        import pyarrow.fs
    except ImportError:
        raise DerainError('file system URIs need pyarrow: pip install "derain[ray]"') from None
    return pyarrow.fs


def _posix(path: str | Path) -> str:
    return path if isinstance(path, str) else path.as_posix()


def resolve(spec: str, filesystem: Any = None) -> tuple[Any, str]:
    """The file system and the path in it that ``spec`` names.

    Args:
        spec: a URI (``s3://bucket/photos``), or with ``filesystem`` a path inside it.
        filesystem: a :class:`pyarrow.fs.FileSystem` to use instead of the URI's scheme.

    Raises:
        DerainError: one line naming ``spec`` when no file system can be made for it (an
            unknown scheme, a bucket that cannot be reached).
    """
    if filesystem is not None:
        return filesystem, spec.rstrip("/") or "/"
    pafs = _pyarrow_fs()
    try:
        fs, path = pafs.FileSystem.from_uri(spec)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DerainError.about(spec, f"cannot open its file system ({first_line(exc)})") from None
    return fs, path.rstrip("/") or "/"


@dataclass(frozen=True)
class ArrowFiles:
    """Files on a :class:`pyarrow.fs.FileSystem`; paths are the file system's own (POSIX)."""

    filesystem: Any

    @property
    def is_local(self) -> bool:
        """Whether the paths are this machine's own (pyarrow's local file system)."""
        return bool(self.filesystem.type_name == _LOCAL)

    def name(self, path: str | Path) -> str:
        """How messages name ``path``: a URI on an object store, else the path itself."""
        prefix = _SCHEMES.get(self.filesystem.type_name)
        return prefix + _posix(path).lstrip("/") if prefix else _posix(path)

    def kind(self, path: str | Path) -> Any:
        """What is at ``path``: a :class:`pyarrow.fs.FileType`.

        Raises:
            OutputError: one line naming ``path`` when the file system cannot be asked.
        """
        try:
            return self.filesystem.get_file_info(_posix(path)).type
        except (OSError, ValueError) as exc:
            raise OutputError.about(
                self.name(path), f"cannot look it up ({first_line(exc)})"
            ) from None

    def _read(self, path: Path) -> bytes:
        name = self.name(path)
        try:
            with self.filesystem.open_input_stream(_posix(path)) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            raise ImageError.about(name, "no such file") from None
        except (OSError, ValueError) as exc:
            raise ImageError.about(name, f"cannot read ({first_line(exc)})") from None

    def open_frames(self, path: Path) -> Image.Image | Animation:
        """See :meth:`derain.io.files.Files.open_frames`."""
        return open_frames(self._read(path), self.name(path))

    def frame_count(self, path: Path) -> int:
        """See :meth:`derain.io.files.Files.frame_count` (1 when the file cannot be read).

        The file is opened for random access, so only its headers travel, not the whole file.
        """
        try:
            with self.filesystem.open_input_file(_posix(path)) as stream:
                return frame_count(stream)
        except (OSError, ValueError):
            return 1

    def write_image(
        self, image: Image.Image | Animation, path: Path, quality: int = 95, **meta: Any
    ) -> None:
        """See :func:`derain.io.writing.write_image_atomic` (and this module's notes)."""
        if self.is_local:
            write_image_atomic(image, path, quality, **meta)
            return
        name = self.name(path)
        data = encode_output(image, name, quality, **meta)
        target = _posix(path)
        fs = self.filesystem
        try:
            if fs.type_name not in _RENAMING:  # an object appears when its upload completes
                with fs.open_output_stream(target) as stream:
                    stream.write(data)
                return
            fs.create_dir(posixpath.dirname(target), recursive=True)
            tmp = temp_path(Path(target)).as_posix()
            try:
                with fs.open_output_stream(tmp) as stream:
                    stream.write(data)
                fs.move(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    fs.delete_file(tmp)
                raise
        except (OSError, ValueError) as exc:
            raise OutputError.about(name, f"cannot write ({first_line(exc)})") from None

    def read_made_by(self, path: Path) -> str | None:
        """See :func:`derain.io.writing.read_made_by` (reads the header only)."""
        try:
            with self.filesystem.open_input_file(_posix(path)) as stream:
                return read_made_by(stream)
        except (OSError, ValueError):  # unreadable: no record, as for a local file
            return None

    def exists(self, path: Path) -> bool:
        """See :meth:`derain.io.files.Files.exists`."""
        return bool(self.kind(path) != _pyarrow_fs().FileType.NotFound)

    def identity(self, path: Path) -> str:
        """See :meth:`derain.io.files.Files.identity`."""
        info = self.filesystem.get_file_info(_posix(path))
        mtime_ns = info.mtime_ns if info.mtime_ns is not None else 0
        return input_identity(Path(_posix(path)).name, info.size or 0, mtime_ns)

    def place(self, path: Path) -> tuple[str, str]:
        """See :meth:`derain.io.files.Files.place`."""
        if self.is_local:
            return "local", str(Path(path).resolve())
        return self.filesystem.type_name, _key(_posix(path))

    def check_writable(self, path: Path) -> None:
        """A folder in the way on any file system; permissions only on the local one (an object
        store tells only when the upload is refused)."""
        if self.is_local:
            check_writable(path)
        elif self.kind(path) == _pyarrow_fs().FileType.Directory:
            raise OutputError.about(self.name(path), "cannot write (is a directory)")


def _key(path: str) -> str:
    """A path as compared across listings (file systems differ on a leading slash)."""
    return path.strip("/")


def list_images(
    files: ArrowFiles, specs: Sequence[str], recursive: bool, exclude: str | None = None
) -> tuple[list[InputFile], list[str]]:
    """Images in folders or files on ``files``' file system, as
    :func:`derain.io.discovery.expand_inputs` lists local ones.

    Image names are those the local lister takes (:func:`derain.io.suffixes.is_input_name`);
    hidden files and folders are left out, and so is ``exclude`` (an output folder inside an
    input folder). Glob patterns are not expanded.

    Args:
        files: the file system.
        specs: folders or files, as paths in it.
        recursive: walk subfolders.
        exclude: a folder (a path in the file system) never to read from.

    Returns:
        The images, their paths in the file system and below their folder; and one error line
        per spec that yields nothing.
    """
    pafs = _pyarrow_fs()
    found: list[InputFile] = []
    errors: list[str] = []
    skip = _key(exclude) + "/" if exclude is not None else ""
    for spec in specs:
        kind = files.kind(spec)
        if kind == pafs.FileType.File:
            found.append(InputFile(Path(spec), Path(posixpath.basename(spec))))
            continue
        if kind != pafs.FileType.Directory:
            errors.append(f"{files.name(spec)}: no such file or folder")
            continue
        root = _key(spec)
        try:
            listing = files.filesystem.get_file_info(pafs.FileSelector(spec, recursive=recursive))
        except (OSError, ValueError) as exc:
            errors.append(f"{files.name(spec)}: cannot list ({first_line(exc)})")
            continue
        count = 0
        # As the local lister: the output folder is left out below the root, not as the root.
        below = bool(skip) and skip != root + "/"
        for entry in sorted(listing, key=lambda e: e.path):
            key = _key(entry.path)
            relative = key[len(root) + 1 :] if root else key
            hidden = any(part.startswith(".") for part in relative.split("/"))
            excluded = below and (key + "/").startswith(skip)
            if entry.type != pafs.FileType.File or hidden or excluded:
                continue
            if is_input_name(Path(relative)):
                found.append(InputFile(Path(entry.path), Path(relative)))
                count += 1
        if not count:
            errors.append(f"{files.name(spec)}: no image files in this folder")
    return found, errors
