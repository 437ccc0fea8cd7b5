"""Which file names are images and which are videos: the one table of each, by suffix."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_CONTAINERS",
    "VIDEO_SUFFIXES",
    "is_image_name",
    "is_input_name",
    "is_video_name",
]

#: File suffixes treated as images when walking folders and expanding globs (lower case).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm"}
)
#: File suffixes treated as videos (lower case), and the FFmpeg container each one writes.
VIDEO_CONTAINERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}
VIDEO_SUFFIXES = frozenset(VIDEO_CONTAINERS)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def is_image_name(path: Path) -> bool:
    """Whether a file name looks like an image we process (by suffix; hidden files never)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and _visible(path)


def is_video_name(path: Path) -> bool:
    """Whether a file name looks like a video we process (by suffix; hidden files never)."""
    return path.suffix.lower() in VIDEO_SUFFIXES and _visible(path)


def is_input_name(path: Path) -> bool:
    """Whether a folder run takes this file: an image, or a video (derained frame by frame)."""
    return is_image_name(path) or is_video_name(path)
