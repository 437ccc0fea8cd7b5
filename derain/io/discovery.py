"""Finding inputs: files, folders (walked once each, links followed) and glob patterns, and
the default output name beside an input."""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .suffixes import is_input_name

__all__ = ["InputFile", "derained_path", "expand_inputs", "has_glob", "iter_images"]


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


def iter_images(
    root: Path,
    recursive: bool,
    exclude: Path | None = None,
    skipped: list[tuple[Path, str]] | None = None,
) -> Iterator[Path]:
    """Image and video files under ``root`` in sorted order.

    Symlinked folders are followed, but each real folder is visited once, so a link loop ends.

    Args:
        root: the folder to walk.
        recursive: also walk subfolders.
        exclude: a subfolder to leave out (an output folder inside the input tree).
        skipped: where to note each entry with an image's name that is there but is not a
            regular file (a FIFO, a socket, a device) and why; it is not yielded. Broken and
            looping links are left out without a note, as links are followed.
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
            if not is_input_name(path):
                continue
            if path.is_file():
                yield path
            elif skipped is not None and path.exists() and not path.is_dir():
                skipped.append((path, _unreadable(path) or "not a regular file"))


#: What a file that is not a regular one is, by its stat type.
_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (a symlink loop, a dangling link, a FIFO…), or
    ``None`` for a regular file."""
    try:
        st = path.stat()
    except OSError as exc:
        if os.path.islink(path):
            return f"is a broken symbolic link ({exc.strerror or type(exc).__name__})"
        return exc.strerror or type(exc).__name__
    if stat.S_ISREG(st.st_mode):
        return None
    kind = next((name for test, name in _SPECIAL if test(st.st_mode)), "not a file")
    return f"is {kind}, not a regular file" if kind != "not a file" else "not a regular file"


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
        skipped: list[tuple[Path, str]] = []
        images = list(iter_images(folder, recursive, exclude, skipped))
        found.extend(InputFile(p, prefix / p.relative_to(folder)) for p in images)
        errors.extend(f"{p}: {why}; skipped" for p, why in skipped)
        return len(images) + len(skipped)

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
        elif os.path.lexists(path):  # there, but not a folder or a regular file
            errors.append(f"{spec}: {_unreadable(path) or 'not a regular file'}")
        else:
            errors.append(f"{spec}: no such file or folder")
    return found, errors


def derained_path(path: Path) -> Path:
    """The default output name: ``<stem>_derained<ext>`` beside the input."""
    return path.with_name(f"{path.stem}_derained{path.suffix}")
