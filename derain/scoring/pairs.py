"""Paired data folders: rainy inputs and their clean targets, matched by file name.

Recognised layouts (first match wins): ``rain/`` + ``norain/`` and ``input/`` + ``target/``.
Files pair by stem, so ``rain/3.png`` matches ``norain/3.jpg``. Used by ``derain eval`` and by
the training data loaders.

Example:
    >>> scan = scan_pairs("Rain12")  # doctest: +SKIP
    >>> scan.pairs[0]  # doctest: +SKIP
    (PosixPath('Rain12/rain/1.png'), PosixPath('Rain12/norain/1.png'))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DerainError
from ..io.discovery import iter_images

__all__ = ["LAYOUTS", "PairScan", "find_pairs", "scan_pairs"]

#: (input folder, target folder) names, in the order they are tried.
LAYOUTS: tuple[tuple[str, str], ...] = (("rain", "norain"), ("input", "target"))


@dataclass(frozen=True)
class PairScan:
    """What a paired folder holds.

    Attributes:
        pairs: (input, target) paths, in natural name order (2 before 10).
        unpaired_inputs: input file names without a target.
        unpaired_targets: target file names without an input.
        layout: the (input, target) folder names found.
    """

    pairs: list[tuple[Path, Path]]
    unpaired_inputs: list[str]
    unpaired_targets: list[str]
    layout: tuple[str, str]


def _natural(stem: str) -> tuple[int, int | str, str]:
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def _images_by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in iter_images(folder, recursive=False):
        if path.stem in out:
            raise DerainError.about(
                path, f"same name as {out[path.stem].name}; pairing by name is ambiguous"
            )
        out[path.stem] = path
    return out


def scan_pairs(root: str | os.PathLike[str]) -> PairScan:
    """Find the layout of ``root`` and pair its images by name.

    Raises:
        DerainError: one line naming ``root`` when it is missing, has no recognised layout or
            holds no pair.
    """
    root = Path(root)
    if not root.is_dir():
        raise DerainError.about(root, "no such folder")
    for names in LAYOUTS:
        inputs_dir, targets_dir = root / names[0], root / names[1]
        if inputs_dir.is_dir() and targets_dir.is_dir():
            break
    else:
        expected = " or ".join(f"{a}/ + {b}/" for a, b in LAYOUTS)
        raise DerainError.about(root, f"not a paired folder; expected subfolders {expected}")
    inputs, targets = _images_by_stem(inputs_dir), _images_by_stem(targets_dir)
    common = sorted(inputs.keys() & targets.keys(), key=_natural)
    if not common:
        raise DerainError.about(
            root, f"no image in {names[0]}/ has a same-named target in {names[1]}/"
        )
    return PairScan(
        pairs=[(inputs[s], targets[s]) for s in common],
        unpaired_inputs=sorted(inputs[s].name for s in inputs.keys() - targets.keys()),
        unpaired_targets=sorted(targets[s].name for s in targets.keys() - inputs.keys()),
        layout=names,
    )


def find_pairs(root: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """The (input, target) pairs of a paired folder; see :func:`scan_pairs`."""
    return scan_pairs(root).pairs
