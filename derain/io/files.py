"""Where a run reads its inputs and writes its outputs: the :class:`Files` interface, and
:class:`LocalFiles` for local paths (:class:`derain.io.arrow.ArrowFiles` is the other
back-end, for pyarrow file systems)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from ..record import input_identity
from .animation import Animation
from .imaging import frame_count, open_frames
from .writing import check_writable, read_made_by, write_image_atomic

__all__ = ["Files", "LocalFiles"]


class Files(Protocol):
    """Where a run reads its inputs and writes its outputs: local paths (:class:`LocalFiles`)
    or a pyarrow file system (:class:`derain.io.arrow.ArrowFiles`)."""

    def name(self, path: Path) -> str:
        """How messages name ``path``."""
        ...

    def open_frames(self, path: Path) -> Image.Image | Animation:
        """The image at ``path`` (every frame of an animated one), read with
        :func:`derain.io.imaging.open_frames`."""
        ...

    def frame_count(self, path: Path) -> int:
        """How many frames the image at ``path`` holds (:func:`derain.io.imaging.frame_count`)."""
        ...

    def write_image(
        self, image: Image.Image | Animation, path: Path, quality: int = 95, **meta: Any
    ) -> object:
        """Write an output, complete or not at all; ``meta``: the keywords ``format``,
        ``icc_profile``, ``exif`` and ``made_by`` of :func:`write_image_atomic`."""
        ...

    def read_made_by(self, path: Path) -> str | None:
        """What made the output at ``path`` (see :func:`read_made_by`)."""
        ...

    def exists(self, path: Path) -> bool:
        """Whether ``path`` exists."""
        ...

    def identity(self, path: Path) -> str:
        """The input's identity for the run record (:func:`derain.record.input_identity`)."""
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

    open_frames = staticmethod(open_frames)
    frame_count = staticmethod(frame_count)
    read_made_by = staticmethod(read_made_by)
    check_writable = staticmethod(check_writable)

    def name(self, path: Path) -> str:
        """See :meth:`Files.name`."""
        return str(path)

    def write_image(
        self, image: Image.Image | Animation, path: Path, quality: int = 95, **meta: Any
    ) -> Path:
        """See :meth:`Files.write_image` (:func:`write_image_atomic`)."""
        return write_image_atomic(image, path, quality, **meta)

    def exists(self, path: Path) -> bool:
        """See :meth:`Files.exists`."""
        return path.exists()

    def identity(self, path: Path) -> str:
        """See :meth:`Files.identity`."""
        stat = Path(path).stat()
        return input_identity(Path(path).name, stat.st_size, stat.st_mtime_ns)

    def place(self, path: Path) -> tuple[str, str]:
        """See :meth:`Files.place`."""
        return "local", str(Path(path).resolve())
