"""Our DANet against the authors' code at 512², in the same process (issue 12's speed goal).

The authors' code is not part of this repository. Point ``--official`` at a checkout of
github.com/kuijiang94/DANet (its ``DANet.py``). That file imports two modules the repository
does not contain: ``subpixel`` (for ``shuffle_up``, a 2× pixel shuffle) and
``Blanced_attention`` (imported, never used by the network). When they are missing, this script
registers stand-ins: ``torch.nn.functional.pixel_shuffle`` for ``shuffle_up`` (the same work
whatever its channel order) and empty names for the other. Weights are random: the speed of a
convolutional network does not depend on them.

The authors' ``DANet()`` with its default arguments builds DANet◆, our ``danet-plus`` (the
script checks that both have the same number of parameters); their file has no argument for
the baseline's two blocks per encoder stage, so the baseline is not built from it. The ratio of
the two implementations on the same network is what the comparison measures.

Timed, interleaved so that a slow spell hits every row alike: the authors' network as their
test script runs it (fp32, NCHW, ``torch.no_grad``), ``Deraining("danet-plus")`` in fp32 and
with default settings (``dtype="auto"``: bf16 autocast on CPUs with native bf16), each a
forward pass and a ``run()`` of a 512² image, and ``danet`` with default settings.

Run: python benchmarks/bench_official.py --official ~/src/DANet [--runs 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import add_common_args, save_section, setup, time_interleaved

from derain import create_model
from derain.engines.precision import precision_name
from derain.inference import Deraining

#: Modules the authors' DANet.py imports but their repository does not ship.
MISSING_MODULES = {
    "subpixel": {"shuffle_up": F.pixel_shuffle, "shuffle_down": F.pixel_unshuffle},
    "Blanced_attention": {"BlancedAttention": None, "BlancedAttention_CAM_SAM_ADD": None},
}


def load_official(folder: Path) -> torch.nn.Module:
    """The authors' ``DANet()`` (default arguments) from ``folder/DANet.py``, random weights."""
    path = folder / "DANet.py"
    if not path.is_file():
        sys.exit(f"bench_official: {path} not found (a checkout of github.com/kuijiang94/DANet)")
    sys.path.insert(0, str(folder))
    for name, attributes in MISSING_MODULES.items():
        if importlib.util.find_spec(name) is None:
            module = types.ModuleType(name)
            module.__dict__.update(attributes)
            sys.modules[name] = module
    spec = importlib.util.spec_from_file_location("official_danet", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DANet().eval()


def parameters(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--official", type=Path, required=True, help="checkout of kuijiang94/DANet")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=None, help="timed rounds (default 7, quick 3)")
    args = parser.parse_args()
    device = setup(args)
    runs = args.runs or (3 if args.quick else 7)

    official = load_official(args.official).to(device)
    ours = create_model("danet-plus")
    if parameters(official) != parameters(ours):
        sys.exit(
            f"bench_official: the authors' DANet() has {parameters(official):,} parameters, "
            f"danet-plus {parameters(ours):,}; not the same network"
        )
    fp32 = Deraining(ours, device=device, dtype="fp32")
    default = Deraining(ours, device=device)
    baseline = Deraining("danet", device=device)
    x = torch.rand(1, 3, args.size, args.size, device=device)
    image = torch.rand(3, args.size, args.size)

    def official_forward() -> None:
        with torch.no_grad():
            official(x)

    def forward(d: Deraining) -> Callable[[], None]:
        xl = x.contiguous(memory_format=torch.channels_last)

        def call() -> None:
            with torch.inference_mode():
                d.engine.forward(xl, with_layers=False)

        return call

    auto = precision_name(default.dtype)
    fns = {
        "official DANet() fp32 forward": official_forward,
        "danet-plus fp32 forward": forward(fp32),
        f"danet-plus default ({auto}) forward": forward(default),
        "danet-plus fp32 run()": lambda: fp32.run(image),
        f"danet-plus default ({auto}) run()": lambda: default.run(image),
        f"danet default ({auto}) run()": lambda: baseline.run(image),
    }
    result = {
        "size": args.size,
        "parameters": {"official DANet()": parameters(official), "danet-plus": parameters(ours)},
        "times": time_interleaved(fns, device, warmup=1 if args.quick else 2, runs=runs),
    }
    base = result["times"]["official DANet() fp32 forward"]["median_s"]
    for name, t in result["times"].items():
        t["vs_official"] = round(t["median_s"] / base, 3)
        print(f"{name}: {t['median_s']:.3f} s (min {t['min_s']:.3f}) = {t['vs_official']:.2f}×")
    print(f"parameters: {result['parameters']}")
    save_section(args, device, "official", result)


if __name__ == "__main__":
    main()
