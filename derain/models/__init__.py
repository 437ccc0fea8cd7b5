"""Network definitions and the registry of named variants."""

from .danet import DANet, DANetConfig, DANetOutput
from .registry import ModelInfo, PretrainedWeights, get_model_info, list_models

__all__ = [
    "DANet",
    "DANetConfig",
    "DANetOutput",
    "ModelInfo",
    "PretrainedWeights",
    "get_model_info",
    "list_models",
]
