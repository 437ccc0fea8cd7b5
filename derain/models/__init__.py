"""Network definitions and the registry of named variants."""

from .danet import DANet, DANetConfig, DANetOutput
from .registry import ModelInfo, PretrainedWeights, create_model, get_model_info, list_models

__all__ = [
    "DANet",
    "DANetConfig",
    "DANetOutput",
    "ModelInfo",
    "PretrainedWeights",
    "create_model",
    "get_model_info",
    "list_models",
]
