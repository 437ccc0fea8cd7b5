"""derain: remove rain from photos with DANet (Jiang et al., IJCAI 2022).

Example:
    >>> from derain import Deraining
    >>> clean = Deraining("danet").run("rainy.jpg")  # doctest: +SKIP
"""

from .errors import (
    DerainError,
    DerainWarning,
    ImageError,
    ModelNotFoundError,
    OutputError,
    WeightsError,
    WeightsNotAvailableError,
)
from .inference import Deraining, DerainResult
from .models import DANet, DANetConfig, DANetOutput, create_model, get_model_info, list_models
from .weights import load_file, save_pretrained

__version__ = "0.1.0"

__all__ = [
    "DANet",
    "DANetConfig",
    "DANetOutput",
    "DerainError",
    "DerainResult",
    "DerainWarning",
    "Deraining",
    "ImageError",
    "ModelNotFoundError",
    "OutputError",
    "WeightsError",
    "WeightsNotAvailableError",
    "__version__",
    "create_model",
    "get_model_info",
    "list_models",
    "load_file",
    "save_pretrained",
]
