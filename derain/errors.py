"""Typed errors. Every message is one line that names the file or value at fault."""

from __future__ import annotations

__all__ = [
    "DerainError",
    "DerainWarning",
    "ImageError",
    "ModelNotFoundError",
    "OutputError",
    "TrainingError",
    "WeightsError",
    "WeightsNotAvailableError",
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


class DerainWarning(UserWarning):
    """Something the user should know that does not stop the work (an animated image of which
    only the first frame is derained)."""


class TrainingError(DerainError):
    """A training run that cannot start or go on: a setting that does not fit the data, the
    hardware or the weights it starts from, or a checkpoint that is not there."""
