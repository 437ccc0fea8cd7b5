"""A folder ready to upload to the Hugging Face Hub: weights, config and a model card.

``export_hub(model, folder)`` writes ``model.safetensors`` and ``config.json`` (the layout
``Deraining("hf-hub:owner/repo")`` loads) and a ``README.md`` whose YAML header the Hub reads
(licence, ``library_name``, ``pipeline_tag``, tags). For a registry name the card carries the
facts the registry records (scores, real-photo rain left, training); for any other source it
says that no scores are recorded and how to measure them.

Example:
    >>> export_hub("danet", "danet-hub", repo_id="me/danet")  # doctest: +SKIP
    >>> # then: huggingface-cli upload me/danet danet-hub
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write
from ..errors import UsageProblem
from .registry import VALIDATION_SETS, ModelInfo, get_model_info
from .sources import parse_source, resolve_model, shipped_file
from .weight_files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    copy_pretrained,
    save_pretrained,
    sha256_of,
)

__all__ = ["CARD_NAME", "HubFolder", "export_hub", "model_card"]

CARD_NAME = "README.md"
LICENSE = "mit"
TAGS = ("deraining", "rain-removal", "image-restoration", "danet", "safetensors")
PAPER = "Jiang et al., *DANet: Image Deraining via Dynamic Association Learning*, IJCAI 2022"
_OWN_FILES = frozenset({WEIGHTS_NAME, CONFIG_NAME, CARD_NAME})


@dataclass(frozen=True)
class HubFolder:
    """What :func:`export_hub` wrote: the folder and the weights' sha256."""

    folder: Path
    sha256: str

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS_NAME

    @property
    def config(self) -> Path:
        return self.folder / CONFIG_NAME

    @property
    def card(self) -> Path:
        return self.folder / CARD_NAME


def _card_header() -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        license=LICENSE,
        library_name="derain",
        pipeline_tag="image-to-image",
        tags=list(TAGS),
    )
    return f"---\n{data.to_yaml()}\n---\n"


def _scores_section(info: ModelInfo | None) -> list[str]:
    if info is None or not info.weights.scores:
        return [
            "No scores are recorded for these weights. Measure them on paired folders",
            "(`rain/` + `norain/`) and on your own real rainy photos:",
            "",
            "```bash",
            "derain eval --data Rain100L/ -m ./this-folder --precision fp32",
            "derain eval --real my-rainy-photos/ -m ./this-folder -m danet",
            "```",
        ]
    w = info.weights
    lines = [
        "PSNR (dB) / SSIM on the Y channel, whole image, fp32 (the paper's protocol), on the",
        "derain project's validation sets:",
        "",
        "| " + " | ".join(VALIDATION_SETS) + " |",
        "|" + "---|" * len(VALIDATION_SETS),
        "| "
        + " | ".join(
            "—" if (s := w.score(v)) is None else f"{s.psnr:.2f} / {s.ssim:.4f}"
            for v in VALIDATION_SETS
        )
        + " |",
    ]
    if w.real_rain_left is not None:
        lines += [
            "",
            f"On 21 real rainy photos without ground truth, mean rain left {w.real_rain_left:.3f}",
            "(`derain eval --real`: the streak energy an output keeps, as a share of the",
            "input's; lower is better).",
        ]
    if w.seconds_per_mp is not None:
        lines += ["", f"{w.seconds_per_mp:.2f} s per megapixel on a 2-core CPU (bf16)."]
    return lines


def model_card(
    repo_id: str,
    sha256: str,
    *,
    info: ModelInfo | None = None,
    source: str | None = None,
) -> str:
    """The text of a Hub model card (``README.md``) for weights with digest ``sha256``.

    Args:
        repo_id: ``owner/repo`` the folder is meant for (used in the usage example).
        sha256: digest of ``model.safetensors``.
        info: the registry entry, when the weights are a shipped variant's.
        source: where the weights came from otherwise (shown as written).

    Example:
        >>> text = model_card("me/danet", "0" * 64, info=get_model_info("danet"))
        >>> text.splitlines()[0], "library_name: derain" in text
        ('---', True)
    """
    title = info.name if info is not None else repo_id.rpartition("/")[2]
    lines = [
        _card_header(),
        f"# {title}",
        "",
        f"DANet ({PAPER}) for removing rain from photos, for the derain library",
        "(`pip install derain`, or from its repository).",
        "",
    ]
    if info is not None:
        lines += [f"{info.description}; {info.paper_gmacs_512:.1f} GMACs at 512×512.", ""]
    else:
        lines += [f"Weights exported from `{source}`.", ""]
    lines += [
        "## Use",
        "",
        "```python",
        "from derain import Deraining",
        "",
        f'derain = Deraining("hf-hub:{repo_id}")',
        'clean = derain.run("rainy.jpg")',
        "```",
        "",
        f"or `derain rainy.jpg -m hf-hub:{repo_id} -o clean.jpg`. The weights are safetensors",
        f"(no pickle); `config.json` records their sha256, `{sha256}`, which derain",
        "checks on every load.",
        "",
        "## Scores",
        "",
        *_scores_section(info),
        "",
        "## Training data",
        "",
    ]
    if info is not None and info.weights.training:
        lines += [info.weights.training, ""]
    else:
        lines += ["Not recorded by the exporter.", ""]
    lines += [
        "## Limits",
        "",
        "The shipped derain weights were never trained on the public benchmarks' own training",
        "rain (Rain13K, which holds the Rain100L / Rain100H training pairs): they learn from rain",
        "synthesised over clean photos and from a teacher's outputs on unlabelled real rainy",
        "photos, so on Rain100L / Rain100H they score below the paper's figures. The densest",
        "downpours keep faint streaks. Judge a model on your own rain with",
        "`derain eval --real DIR`.",
        "",
        "## Licence",
        "",
        "MIT, like the derain code.",
        "",
    ]
    return "\n".join(lines)


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageProblem.about(folder, "exists and is not a folder")
    if folder.is_dir():
        others = sorted(p.name for p in folder.iterdir() if p.name not in _OWN_FILES)
        if others:
            more = f" and {len(others) - 1} more" if len(others) > 1 else ""
            raise UsageProblem.about(
                folder,
                f"not empty (holds {others[0]}{more}); "
                "export into a new folder so nothing of yours is overwritten",
            )


def export_hub(
    source: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    repo_id: str | None = None,
) -> HubFolder:
    """Write ``source``'s weights into ``folder`` in the layout the Hub path loads.

    Args:
        source: anything ``Deraining`` takes: a registry name, ``hf-hub:owner/repo``, a
            ``.safetensors`` file or a saved folder.
        folder: the folder to write; created if needed, refused if it holds other files.
        repo_id: the ``owner/repo`` it will be uploaded to (default ``your-name/<folder>``),
            for the card's usage example.

    Returns:
        The paths written and the weights' sha256.
    """
    folder = Path(folder)
    _check_folder(folder)
    parsed = parse_source(source)
    if parsed.kind == "path" and Path(parsed.value).resolve() in (
        folder.resolve(),
        (folder / WEIGHTS_NAME).resolve(),
    ):
        raise UsageProblem.about(folder, "is the model being exported; choose another folder")
    info = get_model_info(parsed.value) if parsed.kind == "registry" else None
    model, described = resolve_model(source)
    if info is not None:  # the shipped bytes, so the digest is the registry's
        weights = copy_pretrained(model, shipped_file(info), folder, variant=info.name)
    else:
        weights = save_pretrained(model, folder, variant=_variant(folder, source))
    digest = sha256_of(weights)
    card_text = model_card(
        repo_id or f"your-name/{folder.resolve().name}",
        digest,
        info=info,
        source=described,
    )
    atomic_write(folder / CARD_NAME, lambda tmp: tmp.write_text(card_text, "utf-8"))
    return HubFolder(folder, digest)


def _variant(folder: Path, source: str | os.PathLike[str]) -> str:
    """The variant name recorded for weights that are not a registry entry."""
    return Path(os.fspath(source)).stem or folder.name
