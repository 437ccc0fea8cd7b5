"""Judge models on real rainy photos that have no clean twin: the no-reference evaluator.

Each model runs once per photo (outputs kept by :class:`~derain.output_cache.CachedRunner`,
so adding a model to a comparison runs only that model). Each output is measured with
:mod:`derain.scoring.noreference` on the luminance, along the photo's own streak direction (found on
the rainy input): **rain left** (the output's streak energy as a share of the input's; lower
is better), **rain removed** (the same for input − output) and **texture lost** (how much the
output brightened the input; blur and halos raise it, removing rain never does).

Two models compare photo by photo with :func:`compare`: on how many photos ``candidate``
leaves less rain than ``baseline``, and on which its texture loss is worse by more than
:data:`TEXTURE_TOLERANCE`. ``benchmarks/real_photos.py`` (the weights' ship rule) and
``derain eval --real`` both read their verdicts from here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DerainError
from ..inference import Deraining
from ..io.imaging import open_image
from ..output_cache import CachedRunner, file_sha256
from .noreference import (
    densest_streak_window,
    rain_left,
    rain_removed,
    streak_angle,
    streak_energy,
    texture_lost,
)

__all__ = [
    "CROP",
    "LESS_RAIN_SHARE",
    "TEXTURE_TOLERANCE",
    "Comparison",
    "ModelMeasures",
    "PhotoResult",
    "RealEvaluation",
    "compare",
    "evaluate_real",
]

#: Width and height of the 1:1 window around a photo's densest streaks, for people to look at.
CROP = (420, 300)
#: The ship rule asks for less rain on at least 15 of the 21 judges: this share of the photos.
LESS_RAIN_SHARE = 15 / 21
#: "No worse" texture loss: a model's may exceed the other's by this much, in [0, 1]
#: brightness: half a grey level of 255, the smallest difference an 8-bit output can hold
#: (the measure's own fp32/bf16 noise is 2e-5; docs/training.md, "Real-photo score").
TEXTURE_TOLERANCE = 0.5 / 255


@dataclass(frozen=True)
class ModelMeasures:
    """One model's output on one photo, measured.

    Attributes:
        rain_left, rain_removed, texture_lost: see the module's text.
        seconds: the time the model took on this photo, when it ran now or when the cache
            recorded it; ``None`` when unknown.
    """

    rain_left: float
    rain_removed: float
    texture_lost: float
    seconds: float | None


@dataclass
class PhotoResult:
    """A photo, its streak direction, its 1:1 window and every model's measures."""

    name: str
    path: Path
    size: tuple[int, int]
    angle: float
    window: tuple[int, int]
    measures: dict[str, ModelMeasures] = field(default_factory=dict)

    @property
    def megapixels(self) -> float:
        return self.size[0] * self.size[1] / 1e6


@dataclass
class RealEvaluation:
    """Every photo's results, in the order given, and the models by label."""

    models: list[str]
    photos: list[PhotoResult]
    keys: dict[str, str]  # label -> cache key (weights digest and precision)

    def mean(self, model: str, measure: str) -> float:
        """The mean of ``measure`` (``rain_left``, ``rain_removed``, ``texture_lost``)."""
        values = [getattr(p.measures[model], measure) for p in self.photos]
        return float(np.mean(values)) if values else math.nan

    def seconds_per_megapixel(self, model: str) -> float | None:
        """Total time over total megapixels of the photos with a recorded time."""
        timed = [(p.measures[model].seconds, p.megapixels) for p in self.photos]
        known = [(s, mp) for s, mp in timed if s is not None]
        if not known:
            return None
        return sum(s for s, _ in known) / sum(mp for _, mp in known)


@dataclass(frozen=True)
class Comparison:
    """``candidate`` against ``baseline``, photo by photo."""

    baseline: str
    candidate: str
    photos: int
    less_rain: list[str]
    texture_worse: list[str]

    @property
    def needed(self) -> int:
        """Photos with less rain that the ship rule needs (15 of 21)."""
        return math.ceil(LESS_RAIN_SHARE * self.photos - 1e-9)

    @property
    def passes(self) -> bool:
        """The ship rule's real-photo clause."""
        return self.photos > 0 and len(self.less_rain) >= self.needed and not self.texture_worse

    def line(self) -> str:
        """``B leaves less rain than A on N of M photos, texture no worse on K``."""
        no_worse = self.photos - len(self.texture_worse)
        return (
            f"{self.candidate} leaves less rain than {self.baseline} on "
            f"{len(self.less_rain)} of {self.photos} photos, texture no worse on {no_worse}"
        )


def compare(evaluation: RealEvaluation, baseline: str, candidate: str) -> Comparison:
    """How ``candidate`` does against ``baseline`` on the evaluation's photos."""
    less, worse = [], []
    for photo in evaluation.photos:
        a, b = photo.measures[baseline], photo.measures[candidate]
        if b.rain_left < a.rain_left:
            less.append(photo.name)
        if b.texture_lost > a.texture_lost + TEXTURE_TOLERANCE:
            worse.append(photo.name)
    return Comparison(baseline, candidate, len(evaluation.photos), less, worse)


def _as_float(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255.0)


def evaluate_real(
    models: Sequence[tuple[str, Deraining]],
    photos: Sequence[Path],
    cache: Path | None = None,
    *,
    on_photo: Callable[[PhotoResult, dict[str, Image.Image]], None] | None = None,
    on_error: Callable[[Path, DerainError | OSError], None] | None = None,
) -> RealEvaluation:
    """Run and measure every model on every photo.

    Args:
        models: (label, model) pairs; labels name the models in the results.
        photos: the rainy photos.
        cache: the output cache's root folder (``None``: no cache, every model runs).
        on_photo: called after each photo with its result and the outputs by label (the
            report draws its crops from them).
        on_error: called for a photo that cannot be read or run; it is then left out. Without
            it the error propagates.
    """
    runners = {label: CachedRunner(model, cache) for label, model in models}
    evaluation = RealEvaluation(
        [label for label, _ in models], [], {k: r.key for k, r in runners.items()}
    )
    for path in photos:
        try:
            rainy_image = open_image(path).convert("RGB")
            sha = file_sha256(path)
            outputs: dict[str, Image.Image] = {}
            seconds: dict[str, float | None] = {}
            for label, runner in runners.items():
                tick = time.perf_counter()
                outputs[label] = runner.run(path, rainy_image, sha)
                took = time.perf_counter() - tick
                # The model's own time, as the cache recorded it (also for a cached output).
                seconds[label] = took if cache is None else runner.seconds(path, sha)
        except (DerainError, OSError) as exc:
            if on_error is None:
                raise
            on_error(path, exc)
            continue
        rainy = _as_float(rainy_image)
        angle = streak_angle(rainy)
        energy = streak_energy(rainy, angle)
        result = PhotoResult(
            path.stem,
            path,
            rainy_image.size,
            round(angle, 2),
            densest_streak_window(rainy, angle, CROP),
        )
        for label, out in outputs.items():
            derained = _as_float(out)
            result.measures[label] = ModelMeasures(
                rain_left(rainy, derained, angle, energy),
                rain_removed(rainy, derained, angle, energy),
                texture_lost(rainy, derained),
                seconds[label],
            )
        evaluation.photos.append(result)
        if on_photo is not None:
            on_photo(result, outputs)
    return evaluation
