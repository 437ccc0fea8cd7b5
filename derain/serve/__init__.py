"""``derain serve``: an HTTP API and a self-contained web page (the ``serve`` extra).

Example:
    >>> from derain.serve import Limits, ModelPool, WorkerPool, create_app, load_models
    >>> pool = ModelPool(load_models(["danet"], Deraining), WorkerPool(1, 8), 95)  # doctest: +SKIP
    >>> app = create_app(pool, Limits(50 * 2**20, 50_000_000))  # doctest: +SKIP
"""

from .app import Limits, create_app
from .pool import Derained, LoadedModel, ModelPool, WorkerPool, load_models, model_key
from .uploads import ACCEPTED_FORMATS, Probe, probe_image

__all__ = [
    "ACCEPTED_FORMATS",
    "Derained",
    "Limits",
    "LoadedModel",
    "ModelPool",
    "Probe",
    "WorkerPool",
    "create_app",
    "load_models",
    "model_key",
    "probe_image",
]
