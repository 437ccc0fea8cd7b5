"""Video: frames/s at 720p and 1080p, and flicker on a still scene with moving synthetic rain.

Speed: ``Deraining.run_video`` end to end (decode, derain, encode; H.264 CRF 18) on a clip of
synthetic frames, with the shipped-size ``danet`` (random weights: speed does not depend on
them), default settings (``dtype="auto"``, tile 512), and with fp32 for comparison.

Flicker: a still photo (``examples/rocket_clean.png``) with new synthetic rain in every frame
(``derain.train.synthetic``), derained by the shipped ``danet`` weights. Flicker is the mean
absolute difference between consecutive output frames (0..255 scale); a still scene's clean
video has 0. Reported for the rainy input, per-frame deraining and ``--deflicker``; the cost of
``--deflicker`` is its time per frame, and its ghosting is measured on a moving pattern (the
mean absolute error against per-frame deraining where the pattern moved).

Run: python benchmarks/bench_video.py [--quick] [--frames N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from _common import Contention, add_common_args, results_path, save_section, setup
from PIL import Image

from derain import Deraining, create_model
from derain.io.video import Deflicker
from derain.train.synthetic import RainSynthesizer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rocket_clean.png"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def _still_with_rain(size: tuple[int, int], frames: int, seed: int = 0) -> list[np.ndarray]:
    clean = np.asarray(Image.open(EXAMPLE).convert("RGB").resize(size), dtype=np.float32) / 255
    synth = RainSynthesizer("light")
    rng = np.random.default_rng(seed)
    return [np.rint(synth.synthesize(clean, rng) * 255).astype(np.uint8) for _ in range(frames)]


def _write_clip(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "18"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def flicker(frames: list[np.ndarray]) -> float:
    """Mean absolute difference between consecutive frames (0..255)."""
    diffs = [
        np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()
        for a, b in itertools.pairwise(frames)
    ]
    return float(np.mean(diffs))


def measure_speed(args: argparse.Namespace, result: dict) -> None:
    net = create_model("danet")
    for label, size in SIZES.items():
        frames = _still_with_rain(size, args.frames)
        with tempfile.TemporaryDirectory() as folder:
            src = Path(folder) / "in.mp4"
            _write_clip(src, frames)
            for precision in args.precisions:
                derain = Deraining(net, device="cpu", dtype=precision)
                with Contention() as load:
                    start, cpu_start = time.perf_counter(), time.process_time()
                    derain.run_video(src, Path(folder) / "out.mp4")
                    seconds = time.perf_counter() - start
                    cpu = time.process_time() - cpu_start
                key = f"{label}_{precision}"
                result[key] = {
                    "frames": args.frames,
                    "size": list(size),
                    "dtype": str(derain.dtype),
                    "seconds": round(seconds, 2),
                    "frames_per_s": round(args.frames / seconds, 3),
                    # CPU time of all threads (decode, derain, encode): what a frame costs,
                    # whatever other jobs on a shared machine do to the wall time
                    "cpu_s_per_frame": round(cpu / args.frames, 2),
                    "other_cpu_share": load.share,
                }
                print(f"{key}: {args.frames / seconds:.3f} frames/s ({derain.dtype})", flush=True)


def _trail(frames: list[np.ndarray], smooth: Deflicker, lift: int) -> float:
    """Mean |smoothed - per-frame| (0..255) where a moving square was a frame before."""
    step, side = 6, 40
    top = frames[0].shape[0] // 4
    smooth.reset()
    errors = []
    for i, f in enumerate(frames):
        g = f.astype(np.int16)
        g[top : top + side, step * i : step * i + side] += lift
        g = np.clip(g, 0, 255).astype(np.uint8)
        out = smooth(g).astype(np.int16)
        if i:
            was = (slice(top, top + side), slice(step * (i - 1), step * i))
            errors.append(float(np.abs(out[was] - g[was]).mean()))
    return round(float(np.mean(errors)), 3)


def measure_flicker(args: argparse.Namespace, result: dict) -> None:
    derain = Deraining("danet", device="cpu")
    size = (args.flicker_size, args.flicker_size * 3 // 4)
    rainy = _still_with_rain(size, args.flicker_frames, seed=1)
    per_frame = [derain.run(f) for f in rainy]
    smooth = Deflicker()
    start = time.perf_counter()
    smoothed = [smooth(f) for f in per_frame]
    deflicker_s = (time.perf_counter() - start) / len(per_frame)
    clean = np.asarray(Image.open(EXAMPLE).convert("RGB").resize(size), dtype=np.int16)

    def error(frames: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(f.astype(np.int16) - clean).mean() for f in frames]))

    # Ghosting: a square moving 6 px per frame over the derained still, bright (+150 levels)
    # and faint (+24, +12). A trail shows where the square was in the previous frame and is no
    # longer: compare the smoothed frame with the per-frame one there (0: no trail).
    trails = {}
    for label, lift in (("bright", 150), ("faint", 24), ("fainter", 12)):
        trails[label] = _trail(per_frame, smooth, lift)
    result["flicker"] = {
        "size": list(size),
        "frames": len(rainy),
        "rainy_input": round(flicker(rainy), 3),
        "derained_per_frame": round(flicker(per_frame), 3),
        "derained_deflicker": round(flicker(smoothed), 3),
        "error_vs_clean_per_frame": round(error(per_frame), 3),
        "error_vs_clean_deflicker": round(error(smoothed), 3),
        "deflicker_ms_per_frame": round(deflicker_s * 1000, 2),
        "trail_behind_moving_square": trails,
        "dtype": str(derain.dtype),
    }
    print(result["flicker"], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--frames", type=int, default=None, help="frames per speed clip")
    parser.add_argument("--flicker-frames", type=int, default=12)
    parser.add_argument("--flicker-size", type=int, default=480)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--precisions", nargs="+", default=["auto", "fp32"])
    parser.add_argument("--skip-flicker", action="store_true")
    args = parser.parse_args()
    device = setup(args)
    args.frames = args.frames or (3 if args.quick else 8)
    # --skip-speed / --skip-flicker runs update their part and keep the other one
    path = results_path(args, device)
    doc = json.loads(path.read_text()) if path.is_file() else {}
    kept = doc.get("sections", {}).get("video", {})
    result: dict = {k: v for k, v in kept.items() if k not in ("quick", "measured_at")}
    if not args.skip_flicker:
        measure_flicker(args, result)
    if not args.skip_speed:
        measure_speed(args, result)
    save_section(args, device, "video", result)


if __name__ == "__main__":
    main()
