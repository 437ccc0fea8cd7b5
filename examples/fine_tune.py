"""Fine-tune the shipped DANet on your own rainy/clean pairs, then use the result.

Your folder holds `input/` and `target/` (or `rain/` and `norain/`) with matching file names.
The same as: derain train --data pairs/ --recipe cpu --init danet --set steps=500 --export tuned/

    python examples/fine_tune.py pairs/ tuned/
"""

from __future__ import annotations

import sys
from pathlib import Path

from derain import Deraining
from derain.train import apply_overrides, get_recipe, train


def main(data: str, export: str) -> None:
    cfg = apply_overrides(
        get_recipe("cpu"),
        {"data": data, "init": "danet", "steps": 500, "identity_init": False, "out": "runs/tune"},
    )
    train(cfg, export=export)
    print(Deraining(Path(export)))  # a Path is always a path (a bare "tuned" would be a name)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
