"""What we tried: danet forward at 512×512 under different CPU settings, each in a fresh process.

Variants: the default (channels_last, fp32, all cores), NCHW memory format, one thread,
bf16 autocast, torch.compile (inductor; compile time reported), ONNX Runtime (only if the
``onnxruntime`` package is installed; it is not a dependency), and glibc malloc tuned to keep
freed memory (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``) so that large
activations are not returned to the OS and page-faulted back every pass.

Run: python benchmarks/bench_variants.py [--quick] [--variants default nchw ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import add_common_args, save_section, setup, time_runs

from derain import create_model
from derain.inference import Deraining

VARIANTS = ["default", "nchw", "threads1", "bf16", "malloc", "compile", "onnxruntime"]
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def child(variant: str, model: str, size: int, runs: int) -> dict:
    if variant == "threads1":
        torch.set_num_threads(1)
    derain = Deraining(create_model(model), device="cpu")
    net = derain.model
    x = torch.rand(1, 3, size, size)
    info: dict = {}
    if variant == "nchw":
        net = net.to(memory_format=torch.contiguous_format)
    else:
        x = x.contiguous(memory_format=torch.channels_last)
    if variant == "onnxruntime":
        try:
            import onnxruntime as ort
        except ImportError:
            return {"skipped": "onnxruntime is not installed"}
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "danet.onnx"
            start = time.perf_counter()
            torch.onnx.export(net, (x.contiguous(),), str(path), dynamo=False, opset_version=17)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            info["export_s"] = round(time.perf_counter() - start, 1)
        feed = {session.get_inputs()[0].name: x.contiguous().numpy()}
        return {**info, **time_runs(lambda: session.run(None, feed), derain.device, 1, runs)}
    fn = net
    if variant == "compile":
        fn = torch.compile(net)
        start = time.perf_counter()
        with torch.inference_mode():
            fn(x)
        info["compile_s"] = round(time.perf_counter() - start, 1)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16")
    with torch.inference_mode(), autocast:
        return {**info, **time_runs(lambda: fn(x), derain.device, 2, runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--variants", nargs="+", default=None, choices=VARIANTS)
    parser.add_argument("--model", default="danet")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs = 3 if args.quick else 7
    if args.child:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(child(args.child, args.model, args.size, runs)))
        return
    device = setup(args)
    if device.type != "cpu":
        print("skipped: the variants are CPU settings", file=sys.stderr)
        return
    variants = args.variants or [v for v in VARIANTS if not (args.quick and v == "compile")]
    gflop = None
    rows: dict = {}
    for variant in variants:
        env = dict(os.environ, **(MALLOC_ENV if variant == "malloc" else {}))
        cmd = [sys.executable, __file__, "--child", variant, "--model", args.model]
        cmd += ["--size", str(args.size)] + (["--quick"] if args.quick else [])
        cmd += ["--threads", str(args.threads)] if args.threads else []
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode:
            rows[variant] = {"error": proc.stderr.strip().splitlines()[-1][:300]}
        else:
            rows[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        if gflop is None and "median_s" in rows[variant]:
            from torch.utils.flop_counter import FlopCounterMode

            counter = FlopCounterMode(display=False)
            with torch.inference_mode(), counter:
                create_model(args.model)(torch.rand(1, 3, args.size, args.size))
            gflop = counter.get_total_flops() / 1e9
        if "median_s" in rows[variant] and gflop:
            rows[variant]["effective_gflops"] = round(gflop / rows[variant]["median_s"], 1)
        print(variant, rows[variant])
    save_section(args, device, "variants", {"model": args.model, "size": args.size, **rows})


if __name__ == "__main__":
    main()
