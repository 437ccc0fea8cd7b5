"""Latency of danet / danet-plus at 512×512, effective GFLOP/s, and the machine's fp32 peak.

Run: python benchmarks/bench_latency.py [--quick] [--device cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from _common import (
    PAPER_GMACS_512,
    add_common_args,
    cpu_mhz,
    fp32_flops_per_cycle,
    physical_cores,
    save_section,
    setup,
    sync,
    time_runs,
)
from torch.utils.flop_counter import FlopCounterMode

from derain import create_model
from derain.engines.precision import precision_name, resolve_dtype
from derain.inference import Deraining


def count_gmacs(model: torch.nn.Module, size: int) -> float:
    """Multiply-accumulates of one forward pass, counted by torch's FLOP counter (CPU, fp32)."""
    x = torch.rand(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.float().cpu()(x)
    return counter.get_total_flops() / 2 / 1e9


def matmul_gflops(device: torch.device, n: int, runs: int) -> float:
    """Practical fp32 peak: GFLOP/s of an n×n by n×n matmul (fp16 on CUDA)."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    a = torch.rand(n, n, device=device, dtype=dtype)
    b = torch.rand(n, n, device=device, dtype=dtype)
    t = time_runs(lambda: a @ b, device, warmup=2, runs=runs)
    return 2 * n**3 / t["median_s"] / 1e9


def theoretical_peak() -> dict:
    per_cycle, why = fp32_flops_per_cycle()
    mhz = cpu_mhz() or 0.0
    cores = physical_cores()
    return {
        "gflops": round(cores * mhz / 1e3 * per_cycle, 1),
        "how": f"{cores} cores × {mhz / 1e3:.2f} GHz (nominal, /proc/cpuinfo) × {per_cycle} "
        f"FLOP/cycle: {why}",
    }


def _default_precisions(device: torch.device) -> list[str]:
    """fp32, and the precision ``dtype="auto"`` picks when it is another one."""
    auto = precision_name(resolve_dtype("auto", device))
    return ["fp32"] if auto == "fp32" else ["fp32", auto]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--models", nargs="+", default=["danet", "danet-plus"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["fp32", "bf16", "fp16"],
        help="default: fp32 and what dtype='auto' picks here (bf16 on CPUs with native bf16)",
    )
    parser.add_argument("--runs", type=int, default=None, help="timed runs (default 7, quick 3)")
    args = parser.parse_args()
    device = setup(args)
    runs = args.runs or (3 if args.quick else 7)

    result: dict = {"size": args.size, "models": {}}
    precisions = args.precisions or _default_precisions(device)
    for name, precision in itertools.product(args.models, precisions):
        net = create_model(name)
        gmacs = count_gmacs(net, args.size)
        # channels_last; autocast in bf16 / fp16 unless fp32
        derain = Deraining(net, device=device, dtype=precision)
        x = torch.rand(1, 3, args.size, args.size, device=device)
        x = x.contiguous(memory_format=torch.channels_last)

        def forward(derain: Deraining = derain, x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                derain.engine.forward(x, with_layers=False)

        start = time.perf_counter()
        forward()
        sync(device)
        first = time.perf_counter() - start
        t = time_runs(forward, device, warmup=2, runs=runs)
        image = torch.rand(3, args.size, args.size)  # end to end: host tensor in, tensor out
        e2e = time_runs(lambda d=derain, im=image: d.run(im), device, warmup=1, runs=runs)
        label = name if precision == "fp32" else f"{name} {precision}"
        result["models"][label] = {
            "gmacs_counted": round(gmacs, 2),
            "gmacs_paper": PAPER_GMACS_512.get(name) if args.size == 512 else None,
            "first_call_s": round(first, 3),
            "forward": t,
            "run_end_to_end": e2e,
            "effective_gflops": round(2 * gmacs / t["median_s"], 1),
            "dtype": str(derain.dtype),
        }
        print(
            f"{label}: {t['median_s']:.3f} s/forward at {args.size}² "
            f"({gmacs:.1f} GMACs -> {2 * gmacs / t['median_s']:.0f} GFLOP/s), "
            f"run() {e2e['median_s']:.3f} s"
        )
        del derain, net

    n = 2048 if args.quick else 4096
    result["peak"] = {
        "matmul_gflops": round(matmul_gflops(device, n, runs=3 if args.quick else 5), 1),
        "matmul_n": n,
    }
    if device.type == "cpu":
        result["peak"]["theoretical"] = theoretical_peak()
    print(f"peak: {result['peak']}")
    save_section(args, device, "latency", result)


if __name__ == "__main__":
    main()
