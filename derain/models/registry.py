"""Named model variants and the facts about their pretrained weights (timm-style registry)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelNotFoundError
from .danet import DANet, DANetConfig

__all__ = ["ModelInfo", "PretrainedWeights", "create_model", "get_model_info", "list_models"]


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a variant's trained weights live and how to recognise them.

    Attributes:
        filename: file name inside the package's ``weights`` folder.
        sha256: digest of that file; ``None`` while no trained file is shipped.
        hub_id: Hugging Face Hub repository that mirrors the same files, if any.
        license: licence of the weights.
        rain12: (PSNR, SSIM) on Rain12 under the paper's protocol, as measured for the card.
    """

    filename: str
    sha256: str | None = None
    hub_id: str | None = None
    license: str = "MIT"
    rain12: tuple[float, float] | None = None


@dataclass(frozen=True)
class ModelInfo:
    """One named variant: its architecture and its pretrained weights."""

    name: str
    config: DANetConfig
    description: str
    paper_params: int
    paper_gmacs_512: float
    weights: PretrainedWeights


_MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            name="danet",
            config=DANetConfig(channels=48, orb_blocks=5, stage_blocks=2, share_fusion_dsc=True),
            description="DANet baseline (C=48, n=5, k=2): the fast one",
            paper_params=1_547_066,
            paper_gmacs_512=48.8,
            weights=PretrainedWeights(
                filename="danet.safetensors",
                sha256="79573d769e51003b1c57f6c967eaf8b89e544fd94a42205d4d6503bf3e3a681a",
                rain12=(34.99, 0.9517),
            ),
        ),
        ModelInfo(
            name="danet-plus",
            config=DANetConfig(channels=64, orb_blocks=10, stage_blocks=1, share_fusion_dsc=False),
            description="DANet◆ high-accuracy variant (C=64, n=10, k=1)",
            paper_params=2_943_138,
            paper_gmacs_512=130.5,
            weights=PretrainedWeights(
                filename="danet-plus.safetensors",
                sha256="a2f97c924797d6c8344208d1e4840f1fc18fe361bc737943b7e04eeb605b828f",
                rain12=(34.53, 0.9474),
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


def create_model(name: str, pretrained: bool = False) -> DANet:
    """Build a registered variant, optionally with its shipped pretrained weights.

    Args:
        name: a name from :func:`list_models`.
        pretrained: load the weights shipped inside the package (no network access).

    Example:
        >>> net = create_model("danet")
        >>> sum(p.numel() for p in net.parameters())
        1547066
    """
    info = get_model_info(name)
    if pretrained:
        from ..weights import load_shipped

        return load_shipped(info)
    return DANet(info.config)
