"""Shared helpers for the benchmark scripts: machine facts, timing, results file, devices."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Multiply-accumulates at 512×512 as published (paper) for the two variants.
PAPER_GMACS_512 = {"danet": 48.8, "danet-plus": 130.5}


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_flags() -> set[str]:
    return set(_cpuinfo().get("flags", "").split())


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_mhz() -> float | None:
    value = _cpuinfo().get("cpu MHz")
    return float(value) if value else None


def fp32_flops_per_cycle() -> tuple[int, str]:
    """FP32 FLOPs per cycle and core for the widest FMA the CPU has, with the reasoning."""
    flags, info = cpu_flags(), _cpuinfo()
    amd = info.get("vendor_id") == "AuthenticAMD"
    if "avx512f" in flags and amd:
        # Zen 4 runs 512-bit ops on two 256-bit FMA pipes: 2 × 8 lanes × 2 (FMA) = 32.
        return 32, "AMD AVX-512 (Zen 4: 2 × 256-bit FMA pipes × 8 fp32 × 2)"
    if "avx512f" in flags:
        return 64, "Intel AVX-512 (2 × 512-bit FMA units × 16 fp32 × 2)"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2 + FMA (2 × 256-bit FMA units × 8 fp32 × 2)"
    if "avx" in flags:
        return 16, "AVX without FMA (256-bit add + mul)"
    return 8, "SSE (128-bit add + mul)"


def physical_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_info(device: torch.device) -> dict[str, Any]:
    flags = cpu_flags()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": physical_cores(),
        "cpu_mhz": cpu_mhz(),
        "isa": [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["ram_gb"] = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_slug(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{slug}-{physical_cores()}c" if device.type == "cpu" else slug


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller images")
    parser.add_argument("--out", type=Path, default=None, help="results JSON file")


def setup(args: argparse.Namespace) -> torch.device:
    """Apply thread settings and return the device; exit cleanly (0) if CUDA is absent."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"skipped: --device {args.device} but CUDA is not available", file=sys.stderr)
        raise SystemExit(0)
    return device


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device``: a CUDA call returns once its kernels are queued,
    so a timer that does not wait measures the launches, not the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _busy_seconds() -> float:
    """CPU seconds all processes on the machine have used so far (from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Contention:
    """Share of the machine's CPUs that *other* processes used while the block ran.

    A benchmark on a shared machine is only meaningful when this is near 0; the scripts
    record it next to each figure.
    """

    def __enter__(self) -> Contention:
        self._busy, self._wall = _busy_seconds(), time.perf_counter()
        t = os.times()
        self._own = t.user + t.system + t.children_user + t.children_system
        return self

    def __exit__(self, *_: object) -> None:
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system - self._own
        wall = time.perf_counter() - self._wall
        others = _busy_seconds() - self._busy - own
        self.share = round(max(0.0, others) / max(wall, 1e-9) / (os.cpu_count() or 1), 3)
        if self.share > 0.05:
            print(f"warning: other processes used {self.share:.0%} of the CPUs", file=sys.stderr)


def time_runs(fn: Callable[[], Any], device: torch.device, warmup: int, runs: int) -> dict:
    """Seconds per call: median, min and max of ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times, cpu = [], []
    with Contention() as busy:
        for _ in range(runs):
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
    return {
        "median_s": round(statistics.median(times), 4),
        # CPU seconds of this process (all threads) per call: the work, which other jobs on a
        # shared machine change much less than the wall time
        "cpu_median_s": round(statistics.median(cpu), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "runs": runs,
        "other_cpu_share": busy.share,
    }


def time_interleaved(
    fns: dict[str, Callable[[], Any]], device: torch.device, warmup: int, runs: int
) -> dict:
    """Seconds per call of each function, called in turn ``runs`` times (a slow spell hits all).

    Each timed call starts and ends with the device idle (:func:`sync`), so a CUDA call is
    timed with its kernels, not only their launches.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    with Contention() as busy:
        for _ in range(runs):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                sync(device)
                times[name].append(time.perf_counter() - start)
    return {
        name: {
            "median_s": round(statistics.median(t), 4),
            "min_s": round(min(t), 4),
            "max_s": round(max(t), 4),
            "runs": runs,
            "other_cpu_share": busy.share,
        }
        for name, t in times.items()
    }


def results_path(args: argparse.Namespace, device: torch.device) -> Path:
    return args.out or RESULTS_DIR / f"{machine_slug(device)}.json"


def save_section(args: argparse.Namespace, device: torch.device, name: str, data: Any) -> Path:
    """Merge ``{name: data}`` and the machine facts into the results JSON."""
    path = results_path(args, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(path.read_text()) if path.is_file() else {}
    doc["machine"] = machine_info(device)
    doc.setdefault("sections", {})[name] = {
        "quick": bool(args.quick),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        **data,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {name} to {path}")
    return path
