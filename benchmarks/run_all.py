"""Run the whole benchmark suite and print a markdown summary of the results JSON.

Run: python benchmarks/run_all.py [--quick] [--device cuda] [--only latency tiling ...]
Writes benchmarks/results/<machine>.json (each script adds its own section). With
``--summary-only`` it just prints the table for an existing results file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import add_common_args, results_path, setup

HERE = Path(__file__).resolve().parent
SCRIPTS = ["latency", "tiling", "memory", "folder", "train", "variants"]


def _s(section: dict, *keys: str) -> object:
    for key in keys:
        if not isinstance(section, dict) or key not in section:
            return "–"
        section = section[key]
    return section


def summary(doc: dict) -> str:
    """The headline figures of a results document as a markdown table."""
    m, s = doc.get("machine", {}), doc.get("sections", {})
    lines = [
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, ISA {', '.join(m.get('isa', []))}, "
        f"torch {m.get('torch')}, {m.get('threads')} threads"
        + (f", GPU {m['gpu']}" if "gpu" in m else ""),
        "",
        "| measurement | figure |",
        "|---|---|",
    ]
    lat = s.get("latency", {})
    for name, row in lat.get("models", {}).items():
        lines.append(
            f"| {name} forward {lat['size']}² (median) | {row['forward']['median_s']:.3f} s, "
            f"{row['effective_gflops']} GFLOP/s effective ({row['gmacs_counted']} GMACs) |"
        )
    if "peak" in lat:
        peak = lat["peak"]
        theo = _s(peak, "theoretical", "gflops")
        lines.append(
            f"| fp32 peak | {peak['matmul_gflops']} GFLOP/s matmul {peak['matmul_n']}², "
            f"{theo} GFLOP/s theoretical |"
        )
    tiling = s.get("tiling", {})
    if tiling:
        p, o = tiling["photo"], tiling["overhead"]
        lines.append(
            f"| {tiling['model']} tiled {p['size']} ({p['megapixels']} MP) | "
            f"{p['median_s']:.1f} s, {p['mp_per_s']} MP/s |"
        )
        lines.append(
            f"| tiling overhead at {o['size']} (tile {tiling['tile']}, overlap "
            f"{tiling['overlap']}) | {o['time_overhead']:+.1%} time "
            f"(whole {o['whole']['median_s']:.2f} s, tiled {o['tiled']['median_s']:.2f} s); "
            f"{o['compute_overhead']:+.1%} pixels |"
        )
    for row in s.get("memory", {}).get("rows", []):
        lines.append(
            f"| peak RSS {row['megapixels']} MP ({row['size']}) | {row['peak_mb']} MB "
            f"(+{row['growth_mb']} MB over model load, {row['growth_mb_per_mp']} MB/MP) |"
        )
    folder = s.get("folder", {})
    if folder:
        lines.append(
            f"| folder mode, {folder['images']} images / {folder['megapixels']} MP | "
            f"{folder['images_per_s']} img/s ({folder['wall_s']} s incl. "
            f"{folder['startup_s']} s start-up), CPU utilisation {folder['cpu_utilisation']:.0%} |"
        )
    train = s.get("train", {})
    for name, row in train.get("models", {}).items():
        lines.append(
            f"| train step {name}, batch {train['batch']}×{train['crop']}² | "
            f"{row['median_s']:.2f} s/step = {row['steps_per_s']} steps/s |"
        )
    for name, row in s.get("variants", {}).items():
        if isinstance(row, dict) and "median_s" in row:
            extra = "".join(f", {k} {row[k]} s" for k in ("compile_s", "export_s") if k in row)
            lines.append(f"| variant `{name}` | {row['median_s']:.3f} s{extra} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, default=SCRIPTS)
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    device = setup(args)
    path = results_path(args, device)
    if not args.summary_only:
        passthrough = ["--device", args.device, "--out", str(path)]
        passthrough += ["--quick"] if args.quick else []
        passthrough += ["--threads", str(args.threads)] if args.threads else []
        start = time.perf_counter()
        for name in args.only:
            print(f"== {name}", flush=True)
            cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *passthrough]
            if subprocess.run(cmd).returncode:
                print(f"{name} failed; continuing", file=sys.stderr)
        print(f"suite took {time.perf_counter() - start:.0f} s")
    if path.is_file():
        print(summary(json.loads(path.read_text())))
    print(f"torch {torch.__version__}, results in {path}")


if __name__ == "__main__":
    main()
