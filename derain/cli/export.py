"""``derain export MODEL -o model.onnx``: a model as an ONNX file for ONNX Runtime;
``derain export-hub MODEL DIR``: a folder to upload to the Hugging Face Hub."""

from __future__ import annotations

import logging
import warnings
from typing import Annotated

import typer

from .common import DebugOpt, PlainUsage, QuietOpt, command

HELP = """Export a model to ONNX (dynamic height and width) for ONNX Runtime and other engines.

MODEL is anything --model takes: a registry name, hf-hub:owner/repo, a .safetensors file or
a folder. Beside OUTPUT.onnx goes OUTPUT.json with the file's sha256; `derain -m OUTPUT.onnx`
checks it. Needs the onnx extra: pip install "derain[onnx]".
"""


def export(
    model: Annotated[str, typer.Argument(help="Model name, hf-hub:owner/repo, or path.")],
    output: Annotated[str, typer.Option("--output", "-o", help="The .onnx file to write.")],
    name: Annotated[
        str | None, typer.Option(help="Model name stored in the metadata (default: MODEL).")
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export a model to ONNX (help text: ``HELP``)."""
    with command(quiet, debug, None) as reporter:
        from ..engines.onnx import export_onnx, sidecar_path
        from ..models.weight_files import sha256_of

        # The exporter logs and warns about its internals (torchvision ops it skips, the
        # training flag it checks); a user of the command needs none of it.
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)

        def started(source: str) -> None:
            reporter.info(f"exporting {source} to {output} (tracing takes a minute or two)")

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = export_onnx(model, output, name=name, on_start=started)
        reporter.info(f"wrote {path} (sha256 {sha256_of(path)}) and {sidecar_path(path)}")


HUB_HELP = """Write a folder to upload to the Hugging Face Hub: model.safetensors, config.json and a
README.md model card with the Hub's YAML header (licence, library_name, pipeline_tag, tags),
the scores, the training data and the limits.

MODEL is anything --model takes. FOLDER is created; one that holds other files is refused.
Upload it with `huggingface-cli upload OWNER/REPO FOLDER`; then
`derain photo.jpg -m hf-hub:OWNER/REPO` (or Deraining("hf-hub:OWNER/REPO")) loads it.
"""


def export_hub(
    model: Annotated[str, typer.Argument(help="Model name, hf-hub:owner/repo, or path.")],
    folder: Annotated[str, typer.Argument(help="The folder to write.")],
    repo_id: Annotated[
        str | None,
        typer.Option("--repo-id", help="owner/repo it goes to (for the card's example)."),
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a Hub folder (help text: ``HUB_HELP``)."""
    with command(quiet, debug, None) as reporter:
        from ..models.hub_card import export_hub as write_folder

        written = write_folder(model, folder, repo_id=repo_id)
        reporter.info(
            f"wrote {written.weights.name}, {written.config.name} and {written.card.name} "
            f"to {written.folder} (sha256 {written.sha256})"
        )


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``export-hub`` to ``app``."""
    app.command("export", help=HELP, cls=PlainUsage)(export)
    app.command("export-hub", help=HUB_HELP, cls=PlainUsage)(export_hub)
