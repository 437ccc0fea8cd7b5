"""Named model variants and the facts about their shipped weights: a table, nothing more.

Loading lives in :mod:`derain.weights` (``create_model(name, pretrained=True)``); this module
imports nothing that reads files, so the two do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._defaults import DEFAULT_MODEL
from ..errors import ModelNotFoundError
from .danet import DANetConfig

__all__ = [
    "DEFAULT_MODEL",
    "VALIDATION_SETS",
    "ModelInfo",
    "PretrainedWeights",
    "Score",
    "get_model_info",
    "list_models",
]

VALIDATION_SETS = ("Rain12", "RainH-dev", "Rain13K-dev")
"""The validation sets every shipped model is scored on (light, heavy and mixed rain)."""


@dataclass(frozen=True)
class Score:
    """Mean PSNR (dB) and SSIM on one validation set, Y channel, the paper's protocol, fp32."""

    psnr: float
    ssim: float


@dataclass(frozen=True)
class PretrainedWeights:
    """The shipped weights of a variant: the one place their facts are recorded.

    Attributes:
        filename: file name inside the package's ``weights`` folder.
        sha256: digest of that file, checked on every load; ``None`` while none is shipped.
        scores: measured score per validation set (see :data:`VALIDATION_SETS`), as on the
            model card; a test re-measures them when the sets are at hand.
        real_rain_left: mean rain left on the 21 real rainy photos the project judges its
            weights with (``derain eval --real``; lower is better), at the default precision.
        seconds_per_mp: the same run's time per megapixel on the 2-core CPU of the
            benchmarks (bf16), to compare variants with each other.
        version: the weights version (the model card's numbering).
        training: how they were trained, in a sentence or two (the Hub card carries it).
    """

    filename: str
    sha256: str | None = None
    scores: tuple[tuple[str, Score], ...] = ()
    real_rain_left: float | None = None
    seconds_per_mp: float | None = None
    version: int | None = None
    training: str = ""

    def score(self, validation_set: str) -> Score | None:
        """The recorded score on ``validation_set``, or None."""
        return dict(self.scores).get(validation_set)


@dataclass(frozen=True)
class ModelInfo:
    """One named variant: its architecture, its cost and its shipped weights."""

    name: str
    config: DANetConfig
    description: str
    paper_gmacs_512: float
    weights: PretrainedWeights


_MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            name="danet",
            config=DANetConfig(channels=48, orb_blocks=5, stage_blocks=2, share_fusion_dsc=True),
            description="DANet baseline (C=48, n=5, k=2): the fast one",
            paper_gmacs_512=48.8,
            weights=PretrainedWeights(
                filename="danet.safetensors",
                sha256="86c4e8083da6926a3def0899482833ffc51bba28470824c3fac597efe5ca1533",
                scores=(
                    ("Rain12", Score(34.83, 0.9482)),
                    ("RainH-dev", Score(23.04, 0.7121)),
                    ("Rain13K-dev", Score(26.29, 0.8335)),
                ),
                real_rain_left=0.616,
                seconds_per_mp=0.98,
                version=4,
                training=(
                    "Version 4: rain synthesised over 883 clean photos (the `wide` generator, "
                    "drizzle to downpour), then 1,200 steps of batch 8 (9,600 crops of 128²) "
                    "with half of each batch distilled from `danet-plus` version 3 on 61 "
                    "unlabelled real rainy photos. No validation or judging image was "
                    "trained on."
                ),
            ),
        ),
        ModelInfo(
            name="danet-plus",
            config=DANetConfig(channels=64, orb_blocks=10, stage_blocks=1, share_fusion_dsc=False),
            description="DANet◆ high-accuracy variant (C=64, n=10, k=1)",
            paper_gmacs_512=130.5,
            weights=PretrainedWeights(
                filename="danet-plus.safetensors",
                sha256="b23a06f322fdf09127318d9c3dcfbe70e34635ecf49b6af0c7b084e67b8ec77d",
                scores=(
                    ("Rain12", Score(34.67, 0.9478)),
                    ("RainH-dev", Score(23.06, 0.7154)),
                    ("Rain13K-dev", Score(26.16, 0.8300)),
                ),
                real_rain_left=0.597,
                seconds_per_mp=1.42,
                version=3,
                training=(
                    "Version 3: rain synthesised over clean photos (the `wide` generator, "
                    "drizzle to downpour), 2,100 steps of batch 8 in three rounds (750, 900 and "
                    "450), EMA weights of the best validation. No validation or judging image was "
                    "trained on."
                ),
            ),
        ),
    )
}


def list_models() -> list[str]:
    """Names of the registered variants.

    Example:
        >>> list_models()
        ['danet', 'danet-plus']
    """
    return list(_MODELS)


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; raises :class:`ModelNotFoundError` if unknown."""
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(_MODELS)
        raise ModelNotFoundError(f"unknown model {name!r}; known models: {known}") from None
