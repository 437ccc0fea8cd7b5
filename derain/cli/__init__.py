"""The ``derain`` command line.

``derain IMAGE [-o OUT]`` runs the default verb ``run``; the other verbs are ``eval``,
``models``, ``train`` and ``rain-preview``. Typer has no default command, so :func:`main`
inserts ``run`` when the first argument is neither a verb nor a top-level option.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:  # Typer 0.29 carries its own Click; its commands get these types
    from typer._click import Command, Context, HelpFormatter

__all__ = ["app", "main", "with_default_verb"]

DEFAULT_VERB = "run"
#: ``derain run --ray`` given without an address: start a local Ray for the job.
LOCAL_RAY = "local"
#: How alike a word and a verb must be (difflib's ratio) to count as a typo of it.
VERB_TYPO_CUTOFF = 0.75
_TOP_LEVEL_OPTIONS = frozenset(
    {"--help", "-h", "--version", "-V", "--install-completion", "--show-completion"}
)

#: verb -> (module in derain.cli that registers it, line for `derain --help`). A module is
#: imported only when one of its verbs runs or shows its own help, so `derain --help` and
#: `derain --version` never import torch.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "Derain images: files, folders, globs, or - for a pipe."),
    "eval": ("eval", "Score models: PSNR / SSIM on pairs, or rain left on real photos."),
    "models": ("models", "List the models, their weights and scores."),
    "train": ("train", "Train or fine-tune DANet."),
    "rain-preview": ("train", "Write a grid of clean | synthetic-rain pairs."),
    "serve": ("serve", "Serve the HTTP API and a web page."),
    "export": ("export", "Export a model to ONNX for ONNX Runtime."),
    "export-hub": ("export", "Write a folder to upload to the Hugging Face Hub."),
}


class LazyGroup(TyperGroup):
    """The root group: lists verbs from :data:`COMMANDS`, imports a verb's module on use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f".{COMMANDS[cmd_name][0]}", __name__)
        verbs = typer.Typer(
            add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None
        )
        verbs.callback()(lambda: None)  # always a group, even for a module with one verb
        module.register(verbs)
        group = typer.main.get_command(verbs)
        return group.get_command(ctx, cmd_name)  # type: ignore[attr-defined]

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            close = near_verb(args[0])
            hint = f"; did you mean 'derain {close}'?" if close else ""
            ctx.fail(f"no such command or file {args[0]!r}{hint}")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, line) for name, (_, line) in COMMANDS.items()])


app = typer.Typer(
    name="derain",
    cls=LazyGroup,
    help=(
        "Remove rain from photos with DANet.\n\n"
        "A bare path works without a verb: `derain IMAGE [-o OUT]` is `derain run IMAGE`. "
        "See `derain run --help` for folders, globs and pipes."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help (rich help would also import every verb to list it)
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"derain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Remove rain from photos with DANet."""


def command_names() -> set[str]:
    """The verbs the app knows."""
    return set(COMMANDS)


def near_verb(word: str) -> str | None:
    """The verb ``word`` is a typo of (``evall``: ``eval``), if so and no such file exists."""
    if os.path.lexists(word) or any(c in word for c in "/\\.*?["):
        return None
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=VERB_TYPO_CUTOFF)
    return close[0] if close else None


def with_default_verb(argv: Sequence[str]) -> list[str]:
    """Insert ``run`` unless the first argument is a verb or a top-level option.

    ``derain photo.jpg -o out.jpg``, ``derain -o out.jpg photo.jpg`` and ``derain - -o -``
    all become ``derain run ...``; ``derain``, ``derain --help`` and ``derain eval ...`` stay
    as they are. A file named like a verb needs ``derain run NAME`` or ``./NAME``; a word
    close to a verb that names no file (``derain evall``) is left for the group to refuse.
    """
    args = list(argv)
    if not args or args[0] in _TOP_LEVEL_OPTIONS or args[0] in command_names():
        return args
    if near_verb(args[0]):
        return args
    return [DEFAULT_VERB, *args]


def ray_flag_value(args: Sequence[str]) -> list[str]:
    """Give a bare ``--ray`` (last, or followed by another option) the value ``local``.

    Click options take a value or none, not an optional one; this lets ``--ray`` alone mean
    a local Ray while ``--ray ADDRESS`` and ``--ray=ADDRESS`` name a cluster.
    """
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "--ray" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out[i] = f"--ray={LOCAL_RAY}"
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``derain = derain.cli:main``)."""
    args = sys.argv[1:] if argv is None else argv
    app(args=ray_flag_value(with_default_verb(args)), prog_name="derain")
