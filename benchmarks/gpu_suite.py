"""Everything issue 26 asks a GPU to measure, in one process that fits one device call.

Sections, each written to the results JSON as soon as it is done (a run cut short keeps what
it measured), each skipped with a note when the time budget is spent or what it needs is
missing:

- ``correctness``: Rain12 PSNR/SSIM of ``danet`` and ``danet-plus`` on the device in fp32,
  fp16 and bf16 against fp32 on the CPU, and the largest pixel difference from the CPU.
- ``speed``: per model, precision and size (512², 1080p, 4K, 8K): the forward pass alone and
  ``run()`` of an H×W×3 uint8 array with ``tile=None``, and ``run()`` with ``tile="auto"``
  (the plan it chose is recorded); the device's peak memory per row.
- ``video``: frames/s of ``run_video`` (decode, derain, encode) on synthetic 1080p and 4K
  clips, with decode alone and encode alone, so the slowest stage shows.
- ``official``: the authors' ``DANet()`` forward (fp32, fp16 autocast) at 2048² beside
  ``danet-plus``, where a checkout of their code travelled (``--official``).
- ``onnx``: ONNX Runtime's CUDA provider, where this onnxruntime has it.
- ``compile``: ``torch.compile`` of the forward at one fixed shape: compile time against the
  time saved per call (on the CPU only with ``--compile``).

Every timer waits for the device (:func:`_common.sync`). Run it through
``benchmarks/gpu_suite.sh``; on the CPU with ``--device cpu --tiny`` it runs end to end in
seconds (the test of this script does that).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import RESULTS_DIR, machine_info, machine_slug, sync, time_runs

from derain import Deraining
from derain.scoring.evaluate import evaluate
from derain.scoring.pairs import find_pairs

MODELS = ("danet", "danet-plus")
PRECISIONS = ("fp32", "fp16", "bf16")
#: Size classes of the issue: name -> (height, width).
SIZES = {"512": (512, 512), "1080p": (1080, 1920), "4k": (2160, 3840), "8k": (4320, 7680)}
TINY_SIZES = {"64": (64, 64), "96x128": (96, 128)}
#: Seconds a section needs at least to be started.
MIN_SECTION_S = 20
#: Sections that take longer once started (encoding 4K clips, compiling the network).
SECTION_NEEDS_S = {"video": 60, "compile": 150}


class Suite:
    """The results document, written after every section, and the time budget."""

    def __init__(self, path: Path, budget_s: float, device: torch.device) -> None:
        self.path, self.deadline, self.device = path, time.monotonic() + budget_s, device
        self.doc: dict[str, Any] = {
            "machine": machine_info(device),
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "sections": {},
        }
        if device.type == "cuda":
            self.doc["machine"]["capability"] = list(torch.cuda.get_device_capability(device))
        self.save()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=2) + "\n")
        os.replace(tmp, self.path)

    def section(self, name: str, fn: Callable[[], dict], needs_s: float = MIN_SECTION_S) -> None:
        start = time.monotonic()
        if self.left() < needs_s:
            result: dict[str, Any] = {"skipped": f"{self.left():.0f} s left of the budget"}
        else:
            try:
                result = fn()
            except Exception as exc:  # one broken section must not cost the others
                traceback.print_exc()
                result = {"error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.monotonic() - start, 1)
        self.doc["sections"][name] = result
        self.save()
        print(f"== {name}: {json.dumps(result)[:2000]}", flush=True)


@contextlib.contextmanager
def peak_memory(device: torch.device, into: dict) -> Iterator[None]:
    """Record the device's peak allocated memory over the block (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    yield
    if device.type == "cuda":
        into["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def runs_for(pixels: int, tiny: bool) -> tuple[int, int]:
    """Warm-ups and timed runs: fewer for large images so the 8K rows fit the budget."""
    if tiny:
        return 1, 2
    if pixels >= 16_000_000:
        return 1, 3
    if pixels >= 4_000_000:
        return 2, 5
    return 3, 10


def correctness(args: argparse.Namespace, device: torch.device) -> dict:
    pairs = find_pairs(args.data)[: args.limit]
    out: dict[str, Any] = {"pairs": len(pairs), "data": str(args.data)}
    for model in args.models:
        reference = Deraining(model, device="cpu", dtype="fp32")
        cpu = evaluate(reference, pairs)
        cpu_images = [reference.run(np.asarray(_read(r))) for r, _ in pairs]
        row: dict[str, Any] = {"cpu fp32": {"psnr": cpu.psnr, "ssim": cpu.ssim}}
        for precision in args.precisions:
            d = Deraining(model, device=device, dtype=precision)
            scores = evaluate(d, pairs)
            diffs = [
                int(np.abs(d.run(np.asarray(_read(r))).astype(int) - ref.astype(int)).max())
                for (r, _), ref in zip(pairs, cpu_images, strict=True)
            ]
            row[precision] = {
                "psnr": scores.psnr,
                "ssim": scores.ssim,
                "psnr_minus_cpu": round(scores.psnr - cpu.psnr, 4),
                "max_pixel_diff_vs_cpu": max(diffs),
                "finite": bool(np.isfinite([s.psnr for s in scores.scores]).all()),
            }
        out[model] = row
    return out


def _read(path: Path) -> Any:
    from derain.io.imaging import rgb8

    return rgb8(path)


def speed(args: argparse.Namespace, device: torch.device, suite: Suite) -> dict:
    rows: dict[str, Any] = {}
    for size_name, (h, w) in args.sizes.items():
        warmup, runs = runs_for(h * w, args.tiny)
        image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        for model in args.models:
            for precision in args.precisions:
                if suite.left() < MIN_SECTION_S:
                    rows[f"{model} {precision} {size_name}"] = {"skipped": "budget"}
                    continue
                row = _speed_row(model, precision, device, image, warmup, runs)
                rows[f"{model} {precision} {size_name}"] = row
                print(f"{model} {precision} {size_name}: {row}", flush=True)
    return {"rows": rows, "note": "median seconds; run() takes and returns uint8 H×W×3"}


def _speed_row(
    model: str, precision: str, device: torch.device, image: np.ndarray, warmup: int, runs: int
) -> dict:
    row: dict[str, Any] = {}
    whole = Deraining(model, device=device, dtype=precision, tile=None)
    auto = Deraining(whole.model, device=device, dtype=precision, tile="auto")
    h, w = image.shape[:2]
    x = torch.rand(1, 3, h, w, device=device).contiguous(memory_format=torch.channels_last)

    def forward() -> None:
        with torch.inference_mode():
            whole.engine.forward(x, with_layers=False)

    try:
        with peak_memory(device, row):
            row["forward_s"] = time_runs(forward, device, warmup, runs)["median_s"]
        with peak_memory(device, row.setdefault("run_whole", {})):
            row["run_whole"]["median_s"] = time_runs(
                lambda: whole.run(image), device, warmup, runs
            )["median_s"]
        row["run_over_forward"] = round(row["run_whole"]["median_s"] / row["forward_s"], 2)
    except torch.cuda.OutOfMemoryError:
        row["whole"] = "out of memory"
        torch.cuda.empty_cache()
    plan = auto.tile_plan(image.shape[:2])
    row["run_auto"] = {
        "plan": f"{plan.tile}: {plan.reason}",
        "median_s": time_runs(lambda: auto.run(image), device, warmup, runs)["median_s"],
    }
    return row


def _synthetic_clip(path: Path, size: tuple[int, int], frames: int) -> None:
    from bench_video import _write_clip

    h, w = size
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    _write_clip(path, [np.roll(base, 8 * i, axis=1) for i in range(frames)])


def video(args: argparse.Namespace, device: torch.device) -> dict:
    try:
        import av
    except ImportError:
        return {"skipped": "PyAV is not installed (carry its wheel: gpu_suite.sh pack)"}
    sizes = {"tiny": (48, 64)} if args.tiny else {"1080p": (1080, 1920), "4k": (2160, 3840)}
    frames = 4 if args.tiny else args.video_frames
    d = Deraining("danet", device=device)
    out: dict[str, Any] = {"frames": frames, "model": "danet default", "codec": "h264 crf 18"}
    with tempfile.TemporaryDirectory() as folder:
        for name, size in sizes.items():
            src, dst = Path(folder) / f"{name}.mp4", Path(folder) / f"{name}-out.mp4"
            _synthetic_clip(src, size, frames)
            d.run(np.zeros((*size, 3), np.uint8))  # first-call costs out of the timing
            start = time.perf_counter()
            with av.open(str(src)) as container:
                decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            decode_s = time.perf_counter() - start
            start = time.perf_counter()
            for frame in decoded:
                d.run(frame)
            sync(device)
            derain_s = time.perf_counter() - start
            start = time.perf_counter()
            _synthetic_clip(Path(folder) / f"{name}-enc.mp4", size, frames)
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            d.run_video(src, dst)
            total_s = time.perf_counter() - start
            out[name] = {
                "end_to_end_fps": round(frames / total_s, 1),
                "decode_alone_fps": round(frames / decode_s, 1),
                "derain_alone_fps": round(frames / derain_s, 1),
                "encode_alone_fps": round(frames / encode_s, 1),
            }
    return out


def official(args: argparse.Namespace, device: torch.device) -> dict:
    if args.official is None or not (args.official / "DANet.py").is_file():
        return {"skipped": "no checkout of the authors' code travelled (--official)"}
    from bench_official import load_official

    h, w = (96, 128) if args.tiny else (2048, 2048)
    warmup, runs = runs_for(h * w, args.tiny)
    theirs = load_official(args.official).to(device)
    ours = Deraining("danet-plus", device=device, dtype="fp32")
    default = Deraining("danet-plus", device=device)
    x = torch.rand(1, 3, h, w, device=device)
    xl = x.contiguous(memory_format=torch.channels_last)

    def call(fn: Callable[[], Any], autocast: torch.dtype | None = None) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                if autocast is None:
                    fn()
                else:
                    with torch.autocast(device.type, dtype=autocast):
                        fn()

        return run

    half = torch.float16 if device.type == "cuda" else torch.bfloat16
    fns = {
        "official fp32": call(lambda: theirs(x)),
        f"official {half}": call(lambda: theirs(x), half),
        "danet-plus fp32": call(lambda: ours.engine.forward(xl, with_layers=False)),
        f"danet-plus default ({default.dtype})": call(
            lambda: default.engine.forward(xl, with_layers=False)
        ),
    }
    times = {k: time_runs(fn, device, warmup, runs)["median_s"] for k, fn in fns.items()}
    base = times["official fp32"]
    return {
        "size": [h, w],
        "forward_s": times,
        "vs_official_fp32": {k: round(v / base, 3) for k, v in times.items()},
    }


def onnx(args: argparse.Namespace, device: torch.device) -> dict:
    try:
        import onnxruntime as ort
    except ImportError:
        return {"skipped": "onnxruntime is not installed"}
    providers = ort.get_available_providers()
    if device.type == "cuda" and "CUDAExecutionProvider" not in providers:
        return {"skipped": f"no CUDA provider in this onnxruntime ({providers})"}
    from derain.engines.onnx import export_onnx

    h, w = (64, 64) if args.tiny else (1080, 1920)
    warmup, runs = runs_for(h * w, args.tiny)
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx("danet", Path(folder) / "danet.onnx")
        d = Deraining(path, device=str(device), tile=None)
        torch_fp32 = Deraining("danet", device=device, dtype="fp32", tile=None)
        diff = np.abs(d.run(image).astype(int) - torch_fp32.run(image).astype(int)).max()
        return {
            "providers": providers,
            "size": [h, w],
            "run_s": time_runs(lambda: d.run(image), device, warmup, runs)["median_s"],
            "torch_fp32_run_s": time_runs(lambda: torch_fp32.run(image), device, warmup, runs)[
                "median_s"
            ],
            "max_pixel_diff_vs_torch_fp32": int(diff),
        }


def compiled(args: argparse.Namespace, device: torch.device) -> dict:
    h, w = (64, 64) if args.tiny else (1088, 1920)
    warmup, runs = runs_for(h * w, args.tiny)
    d = Deraining("danet", device=device)
    fast = Deraining(d.model, device=device).compile()  # Deraining.compile, as users opt in
    x = torch.rand(1, 3, h, w, device=device).contiguous(memory_format=torch.channels_last)

    def eager() -> None:
        with torch.inference_mode():
            d.engine.forward(x, with_layers=False)

    def compiled_call() -> None:
        with torch.inference_mode():
            fast.engine.forward(x, with_layers=False)

    compiled_call()  # a shape's first run is eager
    start = time.perf_counter()
    compiled_call()  # the second compiles
    sync(device)
    compile_s = time.perf_counter() - start
    eager_s = time_runs(eager, device, warmup, runs)["median_s"]
    fast_s = time_runs(compiled_call, device, warmup, runs)["median_s"]
    saved = eager_s - fast_s
    return {
        "shape": [h, w],
        "dtype": str(d.dtype),
        "compile_s": round(compile_s, 1),
        "eager_s": eager_s,
        "compiled_s": fast_s,
        "fell_back": getattr(getattr(fast.engine, "fast", None), "failed", None),
        "calls_to_repay": round(compile_s / saved) if saved > 0 else None,
    }


def _parse_sizes(text: list[str] | None, tiny: bool) -> dict[str, tuple[int, int]]:
    if not text:
        return TINY_SIZES if tiny else SIZES
    sizes = {}
    for item in text:
        h, _, w = item.partition("x")
        sizes[item] = (int(h), int(w or h))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data", type=Path, default=Path(".gpu-data/Rain12"))
    parser.add_argument("--official", type=Path, default=None, help="the authors' checkout")
    parser.add_argument("--out", type=Path, default=None, help="results JSON")
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: to test the script")
    parser.add_argument("--limit", type=int, default=None, help="Rain12 pairs scored")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS))
    parser.add_argument("--sizes", nargs="+", default=None, help="HxW (default: the 4 classes)")
    parser.add_argument("--video-frames", type=int, default=120)
    parser.add_argument("--compile", action="store_true", help="torch.compile on the CPU too")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["correctness", "speed", "official", "onnx", "video", "compile"],
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_suite: --device cuda but CUDA is not available")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 means TF32 on tensor cores
        torch.backends.cudnn.allow_tf32 = True
    args.sizes = _parse_sizes(args.sizes, args.tiny)
    path = args.out or RESULTS_DIR / f"gpu-suite-{machine_slug(device)}.json"
    suite = Suite(path, args.budget_s, device)
    sections: dict[str, Callable[[], dict]] = {
        "correctness": lambda: correctness(args, device),
        "speed": lambda: speed(args, device, suite),
        "official": lambda: official(args, device),
        "onnx": lambda: onnx(args, device),
        "video": lambda: video(args, device),
        "compile": lambda: (
            compiled(args, device)
            if args.compile or device.type == "cuda"
            else {"skipped": "on the CPU only with --compile"}
        ),
    }
    for name in args.sections:
        needs = 0 if args.tiny else SECTION_NEEDS_S.get(name, MIN_SECTION_S)
        suite.section(name, sections[name], needs_s=needs)
    print(f"wrote {path} ({suite.left():.0f} s of the budget left)")


if __name__ == "__main__":
    main()
