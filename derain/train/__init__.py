"""Training: the paper's recipe on real pairs or synthetic rain, exact resume, multi-GPU."""

from .data import DataError, PairedCrops, StepSampler, SyntheticCrops, build_dataset
from .losses import DANetLoss, charbonnier
from .recipes import RECIPES, TrainConfig, apply_overrides, get_recipe, lr_at
from .synthetic import PRESETS, RainSynthesizer, preset, preview_grid
from .trainer import TrainResult, train, validate

__all__ = [
    "PRESETS",
    "RECIPES",
    "DANetLoss",
    "DataError",
    "PairedCrops",
    "RainSynthesizer",
    "StepSampler",
    "SyntheticCrops",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "build_dataset",
    "charbonnier",
    "get_recipe",
    "lr_at",
    "preset",
    "preview_grid",
    "train",
    "validate",
]
