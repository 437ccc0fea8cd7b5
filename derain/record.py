"""The run record: what made an output (derain's version, the model, its weights, the precision).

Every output (images, their layers, videos) carries one, written as a line of text in the
file's metadata (EXIF Software, a GIF comment, a video container's ``comment`` tag). A rerun
reads it back to decide whether an existing output may be kept: it is redone when other
weights made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ._version import __version__

__all__ = ["RECORD_PREFIX", "RunRecord"]

#: How every record starts; a text without it is not a record of ours.
RECORD_PREFIX = "derain "
_PATTERN = re.compile(
    r"^derain (?P<version>\S+) \(model (?P<model>.*); weights sha256:(?P<sha>[0-9a-f]*)"
    r"(?:; precision (?P<precision>\w+))?\)$"
)


@dataclass(frozen=True)
class RunRecord:
    """What made an output.

    Attributes:
        model: the model as the maker names it (a registry name, a source, or a served name).
        weights_sha256: hex sha256 over the network's tensors (``Deraining.weights_sha256``).
        precision: the compute precision (``fp32``, ``bf16``, ``fp16``); empty if not recorded.
        version: the derain version that wrote it.
    """

    model: str
    weights_sha256: str
    precision: str = ""
    version: str = __version__

    def format(self) -> str:
        """The one-line text written into outputs; :meth:`parse` reads it back."""
        tail = f"; precision {self.precision}" if self.precision else ""
        return (
            f"{RECORD_PREFIX}{self.version} (model {self.model}; "
            f"weights sha256:{self.weights_sha256}{tail})"
        )

    __str__ = format

    @classmethod
    def parse(cls, text: str | None) -> RunRecord | None:
        """The record in ``text``, or ``None`` when ``text`` is not one this module wrote."""
        match = _PATTERN.match(text or "")
        if match is None:
            return None
        return cls(
            model=match["model"],
            weights_sha256=match["sha"],
            precision=match["precision"] or "",
            version=match["version"],
        )

    def same_weights(self, other: RunRecord) -> bool:
        """Whether ``other`` was made by the same weights (so its output may be kept)."""
        return bool(self.weights_sha256) and self.weights_sha256 == other.weights_sha256

    def renamed(self, model: str) -> RunRecord:
        """This record with the model called ``model`` (a server hides its file paths)."""
        return replace(self, model=model)

    @staticmethod
    def is_record(text: str | None) -> bool:
        """Whether ``text`` looks like a record of derain's (parsable or not)."""
        return isinstance(text, str) and text.startswith(RECORD_PREFIX)
