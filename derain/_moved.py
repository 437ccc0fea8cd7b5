"""Old module paths that still import, with a :class:`DeprecationWarning`, for one release.

The package was arranged into rooms (``io/``, ``models/``, ``engines/``, ``scoring/``) in
0.3.0. ``import derain.metrics`` or ``from derain.io_files import iter_images`` keep working
until 0.4.0: a finder on :data:`sys.meta_path` answers each old name of :data:`MOVED` with
the module that now holds its code (the same module object, so nothing is copied), and warns
once, naming the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "install"]

#: Old dotted name -> the module that holds its code now.
MOVED = {
    "derain.arrow_files": "derain.io.arrow",
    "derain.devices": "derain.engines.devices",
    "derain.discovery": "derain.io.discovery",
    "derain.evaluate": "derain.scoring.evaluate",
    "derain.evaluate_real": "derain.scoring.evaluate_real",
    "derain.files": "derain.io.files",
    "derain.hub": "derain.models.hub",
    "derain.hub_card": "derain.models.hub_card",
    "derain.imaging": "derain.io.imaging",
    "derain.io_files": "derain.io",
    "derain.metrics": "derain.scoring.metrics",
    "derain.noreference": "derain.scoring.noreference",
    "derain.onnx_model": "derain.engines.onnx",
    "derain.pairs": "derain.scoring.pairs",
    "derain.png16": "derain.io.png16",
    "derain.precision": "derain.engines.precision",
    "derain.report_html": "derain.scoring.report_html",
    "derain.sources": "derain.models.sources",
    "derain.suffixes": "derain.io.suffixes",
    "derain.video": "derain.io.video",
    "derain.weight_files": "derain.models.weight_files",
    "derain.writing": "derain.io.writing",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new}; import it from there ({spec.name} goes in 0.4.0)",
            DeprecationWarning,
            stacklevel=2,  # warnings skips importlib's own frames: this names the importer
        )
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is the new one, already executed."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        return None if new is None else importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put the finder on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
