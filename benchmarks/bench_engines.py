"""PyTorch fp32, PyTorch bf16 autocast and ONNX Runtime (CPU) on the same model, same run.

Exports the model with ``derain.export_onnx`` (torch's dynamo exporter), checks that ONNX
Runtime matches PyTorch fp32 at a square and a non-square size, then times one forward pass
per engine at 512×512, the engines taking turns so that other load on the machine hits them
alike. Also times ``Deraining.run`` end to end (tiling, padding) on a 1000×750 image.

Run: python benchmarks/bench_engines.py [--quick] [--model danet] [--threads N]
Needs the onnx extra (pip install -e ".[onnx]").
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import add_common_args, save_section, setup, time_interleaved

from derain import Deraining, export_onnx
from derain.engines.onnx import OnnxModel

#: Sizes of the agreement check: one square, one not (both multiples of 16).
CHECK_SIZES = ((256, 256), (192, 320))


def _forward_fns(deraining: Deraining, onnx: OnnxModel, size: int) -> dict:
    x = torch.rand(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    x_np = x.contiguous().numpy()
    net = deraining.model

    def fp32() -> None:
        with torch.inference_mode():
            net(x)

    def bf16() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            net(x)

    return {"pytorch_fp32": fp32, "pytorch_bf16": bf16, "onnxruntime_cpu": lambda: onnx.run(x_np)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--model", default="danet")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--onnx", type=Path, default=None, help="reuse this export (written if missing)"
    )
    args = parser.parse_args()
    device = setup(args)
    if device.type != "cpu":
        print("skipped: this benchmark compares CPU engines")
        raise SystemExit(0)
    runs = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as folder:
        path = args.onnx or Path(folder) / f"{args.model}.onnx"
        export_s = None
        if not path.is_file():
            start = time.perf_counter()
            export_onnx(args.model, path)
            export_s = round(time.perf_counter() - start, 1)
            print(f"export: {export_s:.1f} s ({path.stat().st_size / 1e6:.1f} MB)")
        onnx = OnnxModel(path, device="cpu", threads=args.threads)
        by_torch = Deraining(args.model, device="cpu", dtype=torch.float32)
        by_onnx = Deraining(path, device="cpu")
        agreement = {}
        for h, w in CHECK_SIZES:
            x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))
            with torch.inference_mode():
                ref = by_torch.model(x).derained.numpy()
            got = onnx.run(x.numpy())[0]
            agreement[f"{h}x{w}"] = float(np.abs(got - ref).max())
        print(f"max abs difference ONNX Runtime vs PyTorch fp32: {agreement}")

        forward = time_interleaved(_forward_fns(by_torch, onnx, args.size), device, 1, runs)
        image = np.random.default_rng(0).integers(0, 256, (750, 1000, 3), dtype=np.uint8)
        by_bf16 = Deraining(by_torch.model, device="cpu", dtype=torch.bfloat16)
        run_fns = {
            "pytorch_fp32": lambda: by_torch.run(image),
            "pytorch_bf16": lambda: by_bf16.run(image),
            "onnxruntime_cpu": lambda: by_onnx.run(image),
        }
        end_to_end = time_interleaved(run_fns, device, 0, max(1, runs // 2))
    for name in forward:
        print(
            f"{name}: forward {args.size}² {forward[name]['median_s']:.3f} s, "
            f"run 1000×750 {end_to_end[name]['median_s']:.3f} s"
        )
    import onnxruntime

    save_section(
        args,
        device,
        "engines",
        {
            "model": args.model,
            "onnxruntime": onnxruntime.__version__,
            "export_s": export_s,
            "max_abs_diff_vs_fp32": agreement,
            "forward_size": args.size,
            "forward": forward,
            "run_1000x750": end_to_end,
        },
    )


if __name__ == "__main__":
    main()
