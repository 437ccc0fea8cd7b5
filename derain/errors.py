"""Typed errors. Every message is one line that names the file or value at fault."""

from __future__ import annotations

import os

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


class DerainError(Exception):
    """Base class of every error this package raises on purpose."""


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
        folder: the folder at fault.
        reason: why (``Permission denied``, ``Not a directory``).
    """

    def __init__(self, message: str, folder: str, reason: str) -> None:
        super().__init__(message)
        self.folder = folder
        self.reason = reason


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
    """:func:`first_line`, except that a message that starts with the name of a file whose
    name holds a line break keeps that name whole (the line ends after the problem)."""
    text = str(exc).strip()
    if len(text.splitlines()) < 2:
        return first_line(exc)
    name = _leading_name(text)
    if name and name != name.splitlines()[0]:
        return name + (text[len(name) :].splitlines() or [""])[0]
    return first_line(exc)


def _leading_name(text: str) -> str | None:
    """The longest prefix of ``text`` ending before a ``": "`` that names an existing path."""
    end = text.rfind(": ")
    while end > 0:
        if os.path.lexists(text[:end]):
            return text[:end]
        end = text.rfind(": ", 0, end)
    return None


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
