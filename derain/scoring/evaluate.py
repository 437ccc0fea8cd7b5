"""Scoring a model on paired images: read, derain, score. Used by ``derain eval`` and training.

Example:
    >>> from derain import Deraining
    >>> from derain.scoring.pairs import find_pairs
    >>> summary = evaluate(Deraining("danet"), find_pairs("Rain12"))  # doctest: +SKIP
    >>> round(summary.psnr, 2)  # doctest: +SKIP
    34.76
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import DerainError, ImageError
from ..io.imaging import ImageInput, open_image, rgb8
from .metrics import Score, ScoreSummary, score_pair

if TYPE_CHECKING:
    from ..inference import Deraining

__all__ = ["OnError", "OnImage", "PairInput", "Scored", "evaluate"]

#: One side of a pair: anything :func:`derain.io.imaging.open_image` reads, or pixels in memory.
PairInput = ImageInput


@dataclass(frozen=True)
class Scored:
    """One scored pair, as :func:`evaluate` hands it to ``on_image``.

    Attributes:
        name: the rainy file's name (or the pair's index), as in the summary.
        label: the rainy input as messages name it (its path, or ``image[i]``).
        score: its PSNR / SSIM.
        rainy: the input, uint8 RGB.
        derained: the model's result (the input itself when scoring without a model).
        clean: the target.
    """

    name: str
    label: str
    score: Score
    rainy: np.ndarray
    derained: np.ndarray
    clean: np.ndarray


#: Called after each scored pair.
OnImage = Callable[[Scored], None]
#: Called with the rainy input's label and the error of a pair that cannot be scored; without
#: it, the error is raised.
OnError = Callable[[str, DerainError], None]


def _label(image: PairInput, index: int) -> tuple[str, str]:
    """(short name for tables, full name for messages) of one input."""
    if isinstance(image, (str, os.PathLike)):
        full = os.fspath(image)
        return os.path.basename(full), full
    return str(index), f"image[{index}]"


def _read(image: PairInput, label: str) -> Image.Image | np.ndarray:
    if isinstance(image, (Image.Image, np.ndarray)):
        return image
    return open_image(image, label)


def _size(image: Image.Image | np.ndarray) -> tuple[int, int]:
    """Width and height."""
    return image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])


def _score_one(
    deraining: Deraining | None, rainy_in: PairInput, clean_in: PairInput, index: int
) -> Scored:
    name, label = _label(rainy_in, index)
    clean_label = _label(clean_in, index)[1]
    rainy, clean = _read(rainy_in, label), _read(clean_in, clean_label)
    (w, h), (cw, ch) = _size(rainy), _size(clean)
    if (w, h) != (cw, ch):  # checked before any derain: a mismatch costs nothing
        raise ImageError.about(
            label, f"size {w}×{h} differs from its target {clean_label} ({cw}×{ch})"
        )
    derained = rgb8(rainy if deraining is None else deraining.run(rainy))
    clean_rgb = rgb8(clean, clean_label)
    return Scored(name, label, score_pair(derained, clean_rgb), rgb8(rainy), derained, clean_rgb)


def evaluate(
    deraining: Deraining | None,
    pairs: Iterable[tuple[PairInput, PairInput]],
    *,
    on_image: OnImage | None = None,
    on_error: OnError | None = None,
) -> ScoreSummary:
    """Derain each rainy input and score it against its clean target (the paper's protocol).

    Inputs are read with :func:`derain.io.imaging.open_image`, exactly as inference reads them,
    and scored with :func:`derain.scoring.metrics.score_pair` on the Y channel. A pair whose sizes
    differ is refused before it is derained.

    Args:
        deraining: the model to score; ``None`` scores the rainy inputs themselves.
        pairs: (rainy, clean) pairs: paths (as :func:`derain.scoring.pairs.find_pairs` gives them),
            bytes, file objects, PIL images or uint8 arrays.
        on_image: called after each scored pair (for sample grids or per-image lines).
        on_error: called for a pair that cannot be scored, which is then left out; without
            it the first such error is raised.

    Returns:
        Per-image scores, named by the rainy file's name (or the index), and their means.

    Raises:
        DerainError: a pair cannot be read or its sizes differ (the message names the rainy
            input), when no ``on_error`` is given.
    """
    names: list[str] = []
    scores: list[Score] = []
    for index, (rainy_in, clean_in) in enumerate(pairs):
        try:
            scored = _score_one(deraining, rainy_in, clean_in, index)
        except DerainError as exc:
            if on_error is None:
                raise
            on_error(_label(rainy_in, index)[1], exc)
            continue
        names.append(scored.name)
        scores.append(scored.score)
        if on_image is not None:
            on_image(scored)
    return ScoreSummary(names=tuple(names), scores=tuple(scores))
