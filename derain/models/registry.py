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
                sha256="2e0364be155577b14d02e0f5ef64314294d110b3f43682f1fe358c96ee15804a",
                scores=(
                    ("Rain12", Score(34.93, 0.9507)),
                    ("RainH-dev", Score(22.97, 0.7109)),
                    ("Rain13K-dev", Score(26.29, 0.8352)),
                ),
                real_rain_left=0.584,
                seconds_per_mp=0.98,
                version=5,
                training=(
                    "Version 5: rain synthesised over 883 clean photos (the `wide` generator, "
                    "drizzle to downpour); version 4 distilled from `danet-plus` version 3 on 61 "
                    "unlabelled real rainy photos; then 600 more steps distilled from a teacher "
                    "whose streaks were taken 3.5 times, mixed half-way with version 4. No "
                    "validation or judging image was trained on."
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
                sha256="fc9e2b16a5bd0b35da08adcd4164f0b0b671ca14f8d9fdb90434e51880fa6501",
                scores=(
                    ("Rain12", Score(34.78, 0.9517)),
                    ("RainH-dev", Score(23.28, 0.7287)),
                    ("Rain13K-dev", Score(26.13, 0.8361)),
                ),
                real_rain_left=0.562,
                seconds_per_mp=1.42,
                version=4,
                training=(
                    "Version 4: rain synthesised over clean photos (the `wide` generator, "
                    "drizzle to downpour), 2,100 steps of batch 8 in three rounds to version 3; "
                    "then 1,000 steps with half of each batch distilled from version 3 on 61 "
                    "unlabelled real rainy photos, its streaks taken 2.5 times. No validation "
                    "or judging image was trained on."
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
