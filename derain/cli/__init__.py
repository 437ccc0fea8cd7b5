"""The ``derain`` command line.

``derain IMAGE [-o OUT]`` runs the default verb ``run``; the other verbs are ``eval``,
``models``, ``train`` and ``rain-preview``. Typer has no default command, so :func:`main`
inserts ``run`` when the first argument is neither a verb nor a top-level option.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from . import eval as eval_cmd
from . import models as models_cmd
from . import run as run_cmd
from . import serve as serve_cmd
from . import train as train_cmd

__all__ = ["app", "main", "with_default_verb"]

DEFAULT_VERB = "run"
_TOP_LEVEL_OPTIONS = frozenset(
    {"--help", "-h", "--version", "-V", "--install-completion", "--show-completion"}
)

app = typer.Typer(
    name="derain",
    help=(
        "Remove rain from photos with DANet.\n\n"
        "A bare path works without a verb: `derain IMAGE [-o OUT]` is `derain run IMAGE`. "
        "See `derain run --help` for folders, globs and pipes."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

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


for _module in (run_cmd, eval_cmd, models_cmd, train_cmd, serve_cmd):
    _module.register(app)


def command_names() -> set[str]:
    """The verbs the app knows (including those other modules register)."""
    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


def with_default_verb(argv: Sequence[str]) -> list[str]:
    """Insert ``run`` unless the first argument is a verb or a top-level option.

    ``derain photo.jpg -o out.jpg``, ``derain -o out.jpg photo.jpg`` and ``derain - -o -``
    all become ``derain run ...``; ``derain``, ``derain --help`` and ``derain eval ...`` stay
    as they are. A file named like a verb needs ``derain run NAME`` or ``./NAME``.
    """
    args = list(argv)
    if not args or args[0] in _TOP_LEVEL_OPTIONS or args[0] in command_names():
        return args
    return [DEFAULT_VERB, *args]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``derain = derain.cli:main``)."""
    args = sys.argv[1:] if argv is None else argv
    app(args=with_default_verb(args), prog_name="derain")
