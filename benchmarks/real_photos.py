"""Real-photo check: does a candidate leave less rain than a baseline, without losing texture?

Real rain has no ground truth, so each photo is judged with the no-reference measures of
:mod:`derain.scoring.noreference`, on the luminance, along the photo's own streak
direction (found on the rainy input):

- **rain left**: the output's energy of thin, bright structures along the streaks, as a share of
  the input's (lower is better); **rain removed**, the same for input − output, is reported too;
- **texture lost**: how much the output brightened the input (RMS, in [0, 1] brightness). Rain
  only adds light, so removing it never brightens a pixel, while blur, smear and halos brighten
  the dark side of every edge: removing more rain costs nothing, blur always costs.

The verdict is the ship rule's real-photo clause (issue 24): against the baseline (by default
the shipped weights of the candidate's variant), the candidate leaves less rain on at least
15 of the 21 photos, and its texture loss is no worse than the baseline's on any photo, within
:data:`TEXTURE_TOLERANCE`. The 1:1 crops of the densest streak region of every photo (input,
baseline, candidate side by side) are written for a person to check that the downpours show it.

Exit status: 0 the candidate passes, 1 it fails, 2 a usage or input error (no verdict).

Run:
    python benchmarks/real_photos.py ../shared/data/real --candidate runs/my-run/export \\
        --out /tmp/real-check --cache /tmp/real-cache

Writes ``<out>/<photo>.png`` (the crops) and ``<out>/real_photos.json`` (every number and the
verdict). Models run at ``--dtype auto`` (bf16 on CPUs with native bf16, fp16 on CUDA, else
fp32), like ``derain run``; with ``--cache`` each output is kept per (weights digest, precision,
photo digest), so a rerun costs only the measures. The measures and the verdict come from
:mod:`derain.scoring.evaluate_real`, the evaluator ``derain eval --real`` uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from derain.atomic import atomic_write
from derain.errors import DerainError
from derain.inference import Deraining
from derain.io import iter_images, write_image_atomic
from derain.models.registry import get_model_info, list_models
from derain.scoring.evaluate_real import (
    CROP,
    TEXTURE_TOLERANCE,
    Comparison,
    PhotoResult,
    RealEvaluation,
    compare,
    evaluate_real,
)

LABEL_H = 14  # pixels above each crop for its label
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
BASELINE, CANDIDATE = "baseline", "candidate"


def shipped_name(runner: Deraining) -> str:
    """The registry name whose architecture the runner's network has (its shipped baseline)."""
    for name in list_models():
        if get_model_info(name).config == runner.config:
            return name
    raise DerainError(f"{runner.source}: no shipped model has this architecture; give --baseline")


def side_by_side(images: list[Image.Image], labels: list[str], xy: tuple[int, int]) -> Image.Image:
    """The same 1:1 crop (top-left ``xy``) of equally sized images in a row, labelled above."""
    w, h = images[0].size
    cw, ch = min(CROP[0], w), min(CROP[1], h)
    x, y = xy
    grid = Image.new("RGB", (cw * len(images), ch + LABEL_H), "white")
    draw = ImageDraw.Draw(grid)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        grid.paste(image.crop((x, y, x + cw, y + ch)), (i * cw, LABEL_H))
        draw.text((i * cw + 4, 1), label, fill="black")
    return grid


def verdict(comparison: Comparison) -> dict[str, object]:
    """The real-photo clause over all scored photos."""
    return {
        "photos": comparison.photos,
        "less_rain_left": len(comparison.less_rain),
        "less_rain_needed": comparison.needed,
        "texture_worse": sorted(comparison.texture_worse),
        "texture_tolerance": TEXTURE_TOLERANCE,
        "pass": comparison.passes,
    }


def per_photo(evaluation: RealEvaluation) -> dict[str, dict[str, object]]:
    """Every photo's numbers, in the fields earlier reports had."""
    rows: dict[str, dict[str, object]] = {}
    for photo in evaluation.photos:
        row: dict[str, object] = {"angle": photo.angle, "crop_xy": list(photo.window)}
        for role in (BASELINE, CANDIDATE):
            m = photo.measures[role]
            row |= {
                f"rain_left_{role}": m.rain_left,
                f"rain_removed_{role}": m.rain_removed,
                f"texture_lost_{role}": m.texture_lost,
            }
        rows[photo.name] = row
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, help="Folder of real rainy photos.")
    parser.add_argument(
        "-c", "--candidate", required=True, help="Name, hub id, .safetensors file or folder."
    )
    parser.add_argument(
        "-b", "--baseline", help="The same kinds; default: the shipped weights of its variant."
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="Folder for crops and JSON, outside the checkout."
    )
    parser.add_argument("--cache", type=Path, help="Folder that keeps model outputs for reruns.")
    parser.add_argument("--dtype", default="auto", help="Precision of both models (default auto).")
    parser.add_argument("--candidate-dtype", help="The candidate's precision, if it differs.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.photos.is_dir():
        print(f"error: {args.photos}: not a folder", file=sys.stderr)
        return EXIT_ERROR
    paths = sorted(iter_images(args.photos, recursive=True))
    if not paths:
        print(f"error: {args.photos}: no images", file=sys.stderr)
        return EXIT_ERROR
    try:
        cand = Deraining(args.candidate, dtype=args.candidate_dtype or args.dtype)
        baseline = args.baseline or shipped_name(cand)
        base = Deraining(baseline, dtype=args.dtype)
    except DerainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    args.out.mkdir(parents=True, exist_ok=True)
    labels = ["input", f"baseline {baseline}", f"candidate {args.candidate}"]
    bad: list[str] = []

    def failed(path: Path, exc: DerainError | OSError) -> None:
        message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        print(f"error: {message}", file=sys.stderr)
        bad.append(path.name)

    def done(photo: PhotoResult, outputs: dict[str, Image.Image]) -> None:
        rainy = Image.open(photo.path).convert("RGB")
        images = [rainy, outputs[BASELINE], outputs[CANDIDATE]]
        write_image_atomic(
            side_by_side(images, labels, photo.window), args.out / f"{photo.name}.png"
        )
        b, c = photo.measures[BASELINE], photo.measures[CANDIDATE]
        print(
            f"{photo.name:24s} angle {photo.angle:6.1f}  rain left "
            f"{b.rain_left:.3f} -> {c.rain_left:.3f}  texture lost "
            f"{b.texture_lost:.5f} -> {c.texture_lost:.5f}",
            flush=True,
        )

    evaluation = evaluate_real(
        [(BASELINE, base), (CANDIDATE, cand)], paths, args.cache, on_photo=done, on_error=failed
    )
    comparison = compare(evaluation, BASELINE, CANDIDATE)
    result = verdict(comparison)
    report = {
        "baseline": {"model": baseline, "weights": evaluation.keys[BASELINE]},
        "candidate": {"model": args.candidate, "weights": evaluation.keys[CANDIDATE]},
        "verdict": result,
        "unreadable": bad,
        "per_photo": per_photo(evaluation),
    }
    text = json.dumps(report, indent=2) + "\n"
    atomic_write(args.out / "real_photos.json", lambda p: p.write_text(text))
    print(
        f"\nless rain left on {result['less_rain_left']} of {result['photos']} photos "
        f"(needed {result['less_rain_needed']}); texture worse on "
        f"{len(comparison.texture_worse)} (tolerance {TEXTURE_TOLERANCE})"
        + "".join(f"\n  texture worse: {name}" for name in sorted(comparison.texture_worse))
    )
    if bad:
        print(f"error: {len(bad)} photo(s) unreadable; no verdict", file=sys.stderr)
        return EXIT_ERROR
    print("PASS" if result["pass"] else "FAIL")
    return EXIT_PASS if result["pass"] else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
