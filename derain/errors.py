"""Typed errors. Every message is one line that names the file or value at fault."""

from __future__ import annotations

import os
from typing import TypeVar

__all__ = [
    "DerainError",
    "DerainWarning",
    "ImageError",
    "ModelNotFoundError",
    "OutputError",
    "TrainingError",
    "UnwritableFolder",
    "UsageProblem",
    "WeightsError",
    "WeightsNotAvailableError",
    "describe",
    "first_line",
]


_E = TypeVar("_E", bound="DerainError")


class DerainError(Exception):
    """Base class of every error this package raises on purpose.

    Attributes:
        subject: the file, folder or value the message is about, as the message starts with
            it (``"<subject>: <problem>"``), or ``None`` when the message names none. A program
            that handles the error reads the file's name here rather than from the message.

    >>> err = ImageError.about("rainy.jpg", "file is empty")
    >>> str(err), err.subject
    ('rainy.jpg: file is empty', 'rainy.jpg')
    """

    def __init__(self, *args: object, subject: str | os.PathLike[str] | None = None) -> None:
        super().__init__(*args)
        self.subject = None if subject is None else os.fspath(subject)

    @classmethod
    def about(cls: type[_E], subject: object, problem: str) -> _E:
        """The error ``"<subject>: <problem>"``, with ``subject`` kept whole as :attr:`subject`
        (a file name may hold a colon or a line break)."""
        name = os.fspath(subject) if isinstance(subject, (str, os.PathLike)) else str(subject)
        return cls(f"{name}: {problem}", subject=name)


class ModelNotFoundError(DerainError, KeyError):
    """An unknown model name, hub id or path."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(DerainError):
    """A weights file that is corrupt, altered, of the wrong format or of the wrong shape."""


class WeightsNotAvailableError(WeightsError):
    """A known model whose pretrained weights are not shipped or cannot be fetched."""


class ImageError(DerainError, ValueError):
    """An input image that cannot be read or has an unsupported layout."""


class OutputError(DerainError, OSError):
    """An output that cannot be written."""


class UnwritableFolder(OutputError):
    """An output whose folder cannot be written (permissions, a read-only file system, a
    regular file in the way): every output below ``folder`` would fail alike.

    Attributes:
        subject: the output that cannot be written.
        folder: the folder at fault.
        reason: why (``Permission denied``, ``Not a directory``).

    >>> str(UnwritableFolder("out/a.png", "out", "Permission denied"))
    'out/a.png: cannot write (Permission denied: out)'
    """

    def __init__(
        self, path: str | os.PathLike[str], folder: str | os.PathLike[str], reason: str
    ) -> None:
        path, folder = os.fspath(path), os.fspath(folder)
        super().__init__(f"{path}: cannot write ({reason}: {folder})", subject=path)
        self.folder = folder
        self.reason = reason

    def __reduce__(self) -> tuple[type[UnwritableFolder], tuple[str | None, str, str]]:
        # Built from its parts, not from the message alone, so that it survives pickling.
        return type(self), (self.subject, self.folder, self.reason)


class DerainWarning(UserWarning):
    """Something the user should know that does not stop the work (an animated image of which
    only the first frame is derained)."""


class TrainingError(DerainError):
    """A training run that cannot start or go on: a setting that does not fit the data, the
    hardware or the weights it starts from, or a checkpoint that is not there."""


class UsageProblem(DerainError):
    """Arguments that contradict each other (the command line reports them with exit code 2)."""


class SettingError(TrainingError, UsageProblem):
    """A training setting that is malformed, out of range or contradicts another, found before
    any work (exit code 2 on the command line)."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name if it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _named_first_line(exc: BaseException) -> str:
    """:func:`first_line`, except that a message about a subject whose name holds a line break
    (:attr:`DerainError.subject`) keeps that name whole: the line ends after the problem."""
    text = str(exc)
    subject = getattr(exc, "subject", None)
    if isinstance(subject, str) and "\n" in subject and text.startswith(subject):
        return subject + (text[len(subject) :].splitlines() or [""])[0]
    return first_line(exc)


def describe(exc: BaseException, subject: str | None = None) -> str:
    """One line for an error: ``<file>: <problem>``, prefixing ``subject`` if not named.

    A file name holding a line break stays whole (the command line escapes it when it prints).
    """
    if isinstance(exc, OSError) and not isinstance(exc, DerainError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = _named_first_line(exc)
        if not isinstance(exc, (DerainError, OSError)):
            text = f"unexpected {type(exc).__name__}: {text} (run with --debug for a traceback)"
    # "./x.onnx" is named by a message that starts with "x.onnx" (a Path drops the "./").
    if subject and not text.startswith((subject, os.path.normpath(subject))):
        text = f"{subject}: {text}"
    return text
