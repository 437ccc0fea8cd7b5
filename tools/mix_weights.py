"""Mix two trained networks in weight space: ``start + t · (end − start)``, saved as a folder.

    PYTHONPATH=. python tools/mix_weights.py START END T OUT [--variant NAME]

START and END are any model sources (a registry name, ``hf-hub:…``, a folder or a
``.safetensors`` file). ``T = 0.5`` averages a fine-tune with the weights it started from
(weight-space ensembling); ``T = 1.5`` goes half a step past END. OUT receives
``model.safetensors`` (float32) and ``config.json`` with its sha256, ready for ``derain eval``
and ``benchmarks/real_photos.py``. Errors are one line on stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import sys

import torch

from derain.errors import DerainError, describe
from derain.train.mixing import mix_models
from derain.weights import resolve_model, save_pretrained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("start", help="Weights at t = 0 (what the fine-tune started from).")
    parser.add_argument("end", help="Weights at t = 1.")
    parser.add_argument("t", type=float, help="Where on the line: 0.5 averages.")
    parser.add_argument("out", help="Folder to write (created if needed).")
    parser.add_argument("--variant", help="Name recorded in config.json (e.g. danet-plus).")
    args = parser.parse_args(argv)
    try:
        start, _ = resolve_model(args.start)
        end, _ = resolve_model(args.end)
        mixed = mix_models(start, end, args.t)
        path = save_pretrained(mixed, args.out, variant=args.variant, dtype=torch.float32)
    except (DerainError, ValueError, OSError) as exc:
        print(f"mix_weights: error: {describe(exc)}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
