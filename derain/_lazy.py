"""Public names loaded on first use: the faces import their modules only when a name is asked
for, so ``import derain`` and ``derain --help`` stay fast (torch is not imported)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, table: Mapping[str, str], public: list[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a face.

    Args:
        package: the face's ``__name__``.
        table: public name -> the module (relative to ``package``) that defines it.
        public: the face's ``__all__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{table[name]}", package), name)
        setattr(sys.modules[package], name, value)  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__
