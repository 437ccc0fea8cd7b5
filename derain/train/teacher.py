"""Distillation targets: a teacher model's outputs on unlabelled photos, made once and cached.

Real rainy photos have no clean twin. A careful model's output on one (the *teacher*, by
default the shipped ``danet-plus``) is a target a faster or newer student can learn from, on
real rain rather than synthetic. The teacher runs once per photo, at full size with its own
tiles, in float32; each output is kept by :class:`~derain.output_cache.CachedRunner` under
the digests of the teacher's weights, the precision, the photo and the recipe below, so a
resume or a second run reads it back.

A recipe can ask more of the teacher than one pass:

- ``passes``: run it again on its own output (what one pass leaves, a second removes);
- ``rain_scale``: subtract its rain layer (input − output) this many times instead of once;
- ``flips``: average its outputs over the four mirror images (identity, left–right,
  up–down, both). Rotations by 90° are left out on purpose: they turn streaks sideways,
  which the teacher has rarely seen, and its average then keeps more rain;
- ``streaks_only``: scale only the streaks of the rain layer
  (:func:`~derain.scoring.noreference.streak_part` along the photo's own streak direction),
  so that the rest of what the teacher takes away (a veil, a glare, detail it mistook for
  rain) is taken once, as the teacher does, and not ``rain_scale`` times; and never below
  the teacher's output beside the streak, so that a streak the teacher already took away
  whole does not become a dark line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..inference import Deraining
from ..output_cache import CachedRunner
from ..scoring.noreference import (
    STREAK_ALONG,
    STREAK_BESIDE,
    oriented_smooth,
    streak_angle,
    streak_part,
)
from .recipes import TeacherRecipe

__all__ = ["TeacherRecipe", "teacher_image", "teacher_targets"]

#: The four mirror images: (flip rows, flip columns).
FLIPS = ((False, False), (False, True), (True, False), (True, True))


def _mirror(image: np.ndarray, rows: bool, cols: bool) -> np.ndarray:
    out = image[::-1] if rows else image
    return np.ascontiguousarray(out[:, ::-1] if cols else out)


def _one_pass(runner: Deraining, image: np.ndarray, flips: bool) -> np.ndarray:
    if not flips:
        return runner.run(image)
    outs = [_mirror(runner.run(_mirror(image, r, c)), r, c) for r, c in FLIPS]
    return np.stack(outs).mean(axis=0, dtype=np.float32)


def teacher_image(runner: Deraining, image: Image.Image, recipe: TeacherRecipe) -> Image.Image:
    """The target ``recipe`` makes from ``runner`` for one RGB photo (8-bit RGB out).

    Passes chain in float, so only the final target is rounded to 8 bits.
    """
    rainy = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    out = rainy
    for _ in range(recipe.passes):
        out = _one_pass(runner, out, recipe.flips)
    layer = rainy - out
    if recipe.streaks_only:
        angle = streak_angle(rainy)
        extra = np.float32(recipe.rain_scale - 1.0) * streak_part(layer, angle)
        # Never darker than the teacher's output beside the streak: where the teacher took a
        # streak away whole, taking it again would leave a dark line.
        beside = oriented_smooth(out, angle, STREAK_BESIDE, STREAK_ALONG).astype(np.float32)
        target = np.maximum(out - extra, np.minimum(out, beside))
    else:
        target = rainy - np.float32(recipe.rain_scale) * layer
    return Image.fromarray(np.round(np.clip(target, 0.0, 1.0) * 255.0).astype(np.uint8))


def teacher_targets(
    photos: Sequence[Path],
    teacher: str,
    recipe: TeacherRecipe,
    cache: Path,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> tuple[list[Path], str]:
    """The target file of every photo (made where missing) and the cache key of the teacher.

    Args:
        photos: the unlabelled photos, already checked to decode.
        teacher: the teacher model, anything :class:`~derain.inference.Deraining` accepts.
        recipe: how a target is made.
        cache: root folder of the cache.
        device: where the teacher runs.
        log: called with a progress line per photo made (cached ones are silent).

    Returns:
        The target paths, in the order of ``photos``, and the key naming the teacher's weights
        digest, precision and recipe (written into the run's log and the model card).
    """
    runner = CachedRunner(
        Deraining(teacher, device=device, dtype=torch.float32),
        cache,
        make=lambda r, image: teacher_image(r, image, recipe),
        recipe=recipe.name,
    )
    targets = []
    for i, photo in enumerate(photos, start=1):
        path = runner.path_for(photo)
        made = path is None or not path.is_file()
        targets.append(runner.ensure(photo))
        if made and log is not None:
            log(f"teacher {teacher} ({runner.key}): {i}/{len(photos)} {photo.name}")
    return targets, runner.key
