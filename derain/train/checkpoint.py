"""Resumable checkpoints as one safetensors file: tensors plus JSON metadata, no pickle.

A checkpoint holds the model, the EMA model, the optimizer's state and torch's random state
(the only global generator the loop draws from; the data draws from its own seeded ones). It is
written to a temp file, fsynced and renamed over the old one, so a kill at any instant leaves
either the previous or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import OutputError, TrainingError, WeightsError
from ..models.weight_files import copy_strict, write_safetensors

__all__ = ["load_checkpoint", "save_checkpoint"]


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, entry in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: torch.nn.Module | None,
    step: int,
    extra: dict[str, Any],
) -> None:
    """Write everything needed to continue training bit-for-bit from ``step``."""
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.named_parameters()}
    if ema is not None:
        tensors |= {f"ema.{k}": v.detach().contiguous().cpu() for k, v in ema.named_parameters()}
    optim_tensors, optim_meta = _flatten_optimizer(optimizer.state_dict())
    tensors |= optim_tensors
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": step, "optimizer": optim_meta, "extra": extra}
    metadata = {"derain.checkpoint": json.dumps(meta)}
    try:
        write_safetensors(path, tensors, metadata)
    except OutputError as exc:
        raise TrainingError(
            f"{exc}; the checkpoint before step {step} is kept: make room, then --resume"
        ) from None


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    ema: torch.nn.Module | None,
) -> tuple[int, dict[str, Any]]:
    """Restore a checkpoint in place; returns the step to continue from and the extra data."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["derain.checkpoint"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise WeightsError.about(path, f"not a derain checkpoint ({exc})") from None
    for prefix, module in (("model.", model), ("ema.", ema)):
        if module is not None:
            part = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            copy_strict(module, part, f"{path} ({prefix.rstrip('.')})")
    if optimizer is not None:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["step"]), meta["extra"]
