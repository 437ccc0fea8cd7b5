"""Which floating-point precision a device computes in: ``dtype="auto"`` and its names.

``auto`` picks the fastest precision that does not cost accuracy worth measuring (bf16 loses at
most 0.02 dB against fp32 on the validation sets; ``tests/engines/test_precision.py`` checks it):

- CPU with native bf16 (AVX512-BF16 or AMX-BF16 in the CPU's reported flags): bf16 autocast,
  which oneDNN runs on those instructions. Without them bf16 is emulated and slower than fp32.
- CUDA with tensor cores for fp16 (compute capability 7.0, Volta, and later): fp16 autocast.
  Older GPUs run fp16 slowly or not at all, so fp32 there.
- Anything else (other CPUs, MPS): fp32.

Why fp16 on CUDA, and what is not settled: on an H200 (``benchmarks/gpu_suite.sh``, shipped
weights) fp16 scores what fp32 scores on Rain12 (34.760 against 34.762 dB for ``danet``; bf16
34.765) and runs the forward at 2048² in 42.0 ms against 57.2 ms (``danet-plus``); but at 512²
it was the slower one (15.2 against 11.2 ms). A precision chosen per image size would need
those rows measured for every size class and GPU, with the arithmetic around the network moved
onto the device first; ``benchmarks/gpu_suite.sh`` measures fp32 (TF32), fp16 and bf16 at
512², 1080p, 4K and 8K, and its results decide whether ``auto`` should depend on the size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DerainError

__all__ = [
    "DEVICE_PRECISIONS",
    "PRECISIONS",
    "cpu_has_native_bf16",
    "cuda_auto_dtype",
    "precision_name",
    "resolve_dtype",
]

#: Precision names (``--precision``) and the torch dtypes they mean.
PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
#: The precisions worth offering on each device type, the fastest first (a server lets its
#: clients choose among them, as far as the engine runs them).
DEVICE_PRECISIONS: dict[str, tuple[str, ...]] = {
    "cuda": ("fp16", "bf16", "fp32"),
    "mps": ("fp32", "fp16"),
    "cpu": ("fp32", "bf16"),
}
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
#: CPU flags (Linux /proc/cpuinfo names) of instructions that compute bf16 in hardware.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_CPUINFO = Path("/proc/cpuinfo")
#: CUDA compute capability from which fp16 runs on tensor cores (7.0, Volta).
CUDA_FP16_CAPABILITY = (7, 0)


def _cpuinfo_flags(cpuinfo: Path) -> frozenset[str] | None:
    """The first CPU's ``flags`` line, or ``None`` where the file does not exist (not Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16(cpuinfo: Path = _CPUINFO) -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AVX512-BF16 or AMX-BF16).

    Read from the flags the CPU reports (``/proc/cpuinfo`` on Linux; elsewhere torch's own
    CPUID query), never from a list of models; a torch built without oneDNN answers False.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    flags = _cpuinfo_flags(cpuinfo)
    if flags is not None:
        return bool(flags & NATIVE_BF16_FLAGS)
    # Not Linux: torch's CPUID query (private, so looked up; absent on older torch or non-x86).
    query = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(query()) if query is not None else False


def cuda_auto_dtype(capability: tuple[int, int]) -> torch.dtype:
    """What ``auto`` computes in on a GPU of this compute capability: fp16 with tensor cores."""
    return torch.float16 if tuple(capability) >= CUDA_FP16_CAPABILITY else torch.float32


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """Turn ``"auto"`` (or ``None``), a precision name or a torch dtype into a compute dtype.

    Raises:
        DerainError: an unknown name or an unsupported dtype.
    """
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            if not torch.cuda.is_available():  # a device named, not used: assume tensor cores
                return cuda_auto_dtype(CUDA_FP16_CAPABILITY)
            return cuda_auto_dtype(torch.cuda.get_device_capability(device))
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, str):
        name = _ALIASES.get(dtype.lower(), dtype.lower())
        if name not in PRECISIONS:
            raise DerainError(f"unknown precision {dtype!r}; use auto, {', '.join(PRECISIONS)}")
        return PRECISIONS[name]
    if dtype not in PRECISIONS.values():
        raise DerainError(f"unsupported dtype {dtype}; use float32, float16 or bfloat16")
    return dtype


def precision_name(dtype: torch.dtype) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for a compute dtype."""
    return next(name for name, d in PRECISIONS.items() if d == dtype)
