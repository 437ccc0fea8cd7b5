"""The run record: what made an output (derain's version, the model, its weights, the precision).

Every output (images, their layers, videos) carries one, written as a line of text in the
file's metadata (EXIF Software, a GIF comment, a video container's ``comment`` tag). A rerun
reads it back to decide whether an existing output may be kept: it is redone when other
weights made it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

from ._version import __version__

__all__ = ["RECORD_PREFIX", "RunRecord", "input_identity"]

#: How every record starts; a text without it is not a record of ours.
RECORD_PREFIX = "derain "
_PATTERN = re.compile(
    r"^derain (?P<version>\S+) \(model (?P<model>.*); weights sha256:(?P<sha>[0-9a-f]*)"
    r"(?:; precision (?P<precision>\w+))?(?:; input (?P<input>[0-9a-f]+))?"
    r"(?:; frames (?P<frames>[0-9]+))?\)$"
)
#: Hex digits kept of an input's identity digest (64 bits: no two inputs of a batch collide).
_INPUT_DIGITS = 16


def input_identity(name: str, size: int, mtime_ns: int) -> str:
    """Which input made an output: a short digest of its file name (the last part, so a
    moved folder keeps its outputs), its size and its modification time."""
    text = f"{name}\0{size}\0{mtime_ns}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:_INPUT_DIGITS]


@dataclass(frozen=True)
class RunRecord:
    """What made an output.

    Attributes:
        model: the model as the maker names it (a registry name, a source, or a served name).
        weights_sha256: hex sha256 over the network's tensors (``Deraining.weights_sha256``).
        precision: the compute precision (``fp32``, ``bf16``, ``fp16``); empty if not recorded.
        version: the derain version that wrote it.
        input: the input's identity (:func:`input_identity`); empty when not recorded (an
            older derain, an upload, stdin).
        frames: how many frames the output holds, for an animated image (0: one picture).
    """

    model: str
    weights_sha256: str
    precision: str = ""
    version: str = __version__
    input: str = ""
    frames: int = 0

    def format(self) -> str:
        """The one-line text written into outputs; :meth:`parse` reads it back."""
        tail = f"; precision {self.precision}" if self.precision else ""
        tail += f"; input {self.input}" if self.input else ""
        tail += f"; frames {self.frames}" if self.frames > 1 else ""
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
            input=match["input"] or "",
            frames=int(match["frames"] or 0),
        )

    def same_weights(self, other: RunRecord) -> bool:
        """Whether ``other`` was made by the same weights (so its output may be kept)."""
        return bool(self.weights_sha256) and self.weights_sha256 == other.weights_sha256

    def for_input(self, identity: str, frames: int = 0) -> RunRecord:
        """This record for the input of identity ``identity`` (:func:`input_identity`) and
        ``frames`` frames (an animated image; 0 or 1: one picture)."""
        return replace(self, input=identity).with_frames(frames)

    def why_redo(self, found: RunRecord | None) -> str | None:
        """Why an output whose record is ``found`` must be redone to match this record, or
        ``None`` when it may be kept (same weights and, when this record names its input, the
        same input and, for an animated input, all of its frames; an older record that names
        no input counts as another input)."""
        if found is None or not self.same_weights(found):
            return "it was made by another model"
        if self.input and found.input != self.input:
            if not found.input:
                return "its record does not say which input made it (an older derain)"
            return "it was made from another input"
        if self.frames != found.frames:
            return f"it holds {found.frames or 1} of the input's {self.frames or 1} frames"
        return None

    def with_frames(self, frames: int) -> RunRecord:
        """This record for an output of ``frames`` frames (0 or 1: one picture)."""
        return replace(self, frames=frames if frames > 1 else 0)

    def renamed(self, model: str) -> RunRecord:
        """This record with the model called ``model`` (a server hides its file paths)."""
        return replace(self, model=model)

    @staticmethod
    def is_record(text: str | None) -> bool:
        """Whether ``text`` looks like a record of derain's (parsable or not)."""
        return isinstance(text, str) and text.startswith(RECORD_PREFIX)
