"""Pieces shared by the commands: one-line errors on stderr, and the model options."""

from __future__ import annotations

import contextlib
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from PIL import Image
from rich.console import Console
from typer.core import TyperArgument, TyperCommand

from ..batch import ModelOptions
from ..engines.precision import PRECISIONS
from ..errors import DerainError, DerainWarning, UsageProblem, describe
from ..tiling import TileRequest, parse_tile

if TYPE_CHECKING:
    from typer._click import Context

    from ..inference import Deraining

__all__ = ["Reporter", "UsageProblem", "command", "describe", "load_deraining"]

PROG = "derain"

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Model name (see `derain models`), hf-hub:owner/repo, or path."
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
TileOpt = Annotated[
    str, typer.Option(help="Tile side in pixels (>= 64), 'auto' (from free memory) or 'none'.")
]
OverlapOpt = Annotated[int, typer.Option(min=0, help="Pixels shared by neighbouring tiles.")]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="auto (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32), fp32, bf16 or fp16."
    ),
]
#: The old spelling of ``--precision fp32``, kept working but no longer shown.
Fp32Opt = Annotated[bool, typer.Option("--fp32", hidden=True, help="Same as --precision fp32.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
MaxPixelsOpt = Annotated[
    int | None,
    typer.Option(
        min=0, help="Allow images up to this many pixels (Pillow's bomb guard); 0: no limit."
    ),
]


class PlainUsage(TyperCommand):
    """A command whose usage line reads ``IMAGE...`` as Click writes it, not ``{IMAGE}...``."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                pieces.append(f"{name}..." if param.nargs != 1 else name)
        return pieces


#: Characters a message line never shows raw: C0 controls, DEL, and the line separators.
_UNSHOWN = {c: f"\\x{c:02x}" for c in (*range(32), 127)} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    """``text`` with what would break or fake a line escaped, as ``ls -b`` shows names.

    A file name may hold a newline or a carriage return, and a name that is not valid UTF-8
    arrives with surrogate escapes (``\\udcff`` for the byte 0xff): each is shown as an escape,
    so every message stays one line and a log can be parsed a line per file.

    Example:
        >>> one_line("wrote out/a\\nb.png") == "wrote out/a\\\\nb.png"
        True
    """
    out = text.translate(_UNSHOWN)
    if any("\udc80" <= c <= "\udcff" for c in out):
        out = "".join(f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else c for c in out)
    return out


class Reporter:
    """Human output on stderr, so stdout stays free for image bytes and tables."""

    def __init__(self, quiet: bool = False, debug: bool = False) -> None:
        self.quiet = quiet
        self.debug = debug
        # emoji=False: "hf-hub:x: …" must not print ":x:" as an emoji.
        self.console = Console(stderr=True, highlight=False, emoji=False)

    def _line(self, text: str) -> None:
        # soft_wrap keeps each message on one line whatever the terminal width; one_line
        # keeps a file name's newline or undecodable byte from breaking it.
        self.console.print(one_line(text), markup=False, soft_wrap=True)

    def error(self, message: str, exc: BaseException | None = None) -> None:
        """Print ``derain: error: <message>`` (after the traceback with ``--debug``)."""
        if self.debug and exc is not None:
            self.console.file.write("".join(traceback.format_exception(exc)))
        self._line(f"{PROG}: error: {message}")

    def warning(self, message: str) -> None:
        """Print ``derain: warning: <message>`` unless quiet."""
        if not self.quiet:
            self._line(f"{PROG}: warning: {message}")

    def info(self, message: str) -> None:
        """Print a plain line unless quiet."""
        if not self.quiet:
            self._line(message)


def _warning_printer(reporter: Reporter, default: Callable[..., None]) -> Callable[..., None]:
    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, DerainWarning):
            reporter.warning(str(message))
        else:
            default(message, category, *args, **kwargs)

    return show


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether Ctrl-C is behind ``exc``: a C extension whose import it interrupted re-raises it
    wrapped (pybind11: ``ImportError: initialization failed``, from the KeyboardInterrupt)."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


@contextlib.contextmanager
def fatal_errors(reporter: Reporter) -> Iterator[None]:
    """Turn any error escaping a command into one line on stderr and an exit code.

    Usage problems exit with 2, other failures with 1, Ctrl-C with 130. A
    :class:`~derain.errors.DerainWarning` (an animated image) becomes one warning line, each
    time it is raised.
    """
    try:
        with warnings.catch_warnings():  # restores the filters and showwarning on exit
            warnings.simplefilter("always", DerainWarning)
            warnings.showwarning = _warning_printer(reporter, warnings.showwarning)
            yield
    except (typer.Exit, click.exceptions.Exit, click.ClickException):
        raise
    except KeyboardInterrupt:
        reporter.error("interrupted")
        raise typer.Exit(130) from None
    except UsageProblem as exc:
        reporter.error(describe(exc), exc)
        raise typer.Exit(2) from None
    except Exception as exc:
        if _caused_by_interrupt(exc):
            reporter.error("interrupted")
            raise typer.Exit(130) from None
        reporter.error(describe(exc), exc)
        raise typer.Exit(1) from None


def check_tile_option(text: str) -> TileRequest:
    """``--tile`` read by :func:`derain.tiling.parse_tile`; a bad value is a usage problem."""
    try:
        return parse_tile(text)
    except DerainError as exc:
        raise UsageProblem(f"--tile: {exc}") from None


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Raise Pillow's decompression-bomb limit for the duration of a command."""
    saved = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels or None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def parse_precision(text: str, fp32: bool = False) -> str:
    """``--precision`` as :class:`derain.Deraining` takes it (``--fp32`` wins as its alias)."""
    value = "fp32" if fp32 else text.strip().lower()
    if value != "auto" and value not in PRECISIONS:
        raise UsageProblem(f"--precision: expected auto, {', '.join(PRECISIONS)}, got {text!r}")
    return value


@contextlib.contextmanager
def command(quiet: bool, debug: bool, max_pixels: int | None) -> Iterator[Reporter]:
    """The frame of a command: its reporter, one-line errors and exit codes, the pixel limit."""
    reporter = Reporter(quiet, debug)
    with fatal_errors(reporter), pixel_limit(max_pixels):
        yield reporter


def check_model_options(tile: str, precision: str, fp32: bool, device: str = "auto") -> None:
    """Refuse a malformed ``--tile``, ``--precision`` or ``--device`` (exit 2), before any work."""
    check_tile_option(tile)
    parse_precision(precision, fp32)
    # A well-spelt device this machine lacks (cuda without CUDA) is found when the model
    # loads, and exits 1 like anything else the command needed and could not have.
    from ..engines.devices import check_device_name

    try:
        check_device_name(device)
    except DerainError as exc:
        raise UsageProblem(f"--device: {exc}") from None


def load_deraining(
    model: str, device: str, tile: str, overlap: int, fp32: bool, precision: str = "auto"
) -> Deraining:
    """Build the :class:`derain.Deraining` front object from the command-line options."""
    dtype = parse_precision(precision, fp32)
    check_tile_option(tile)
    return ModelOptions(model, device, tile, overlap, dtype).load()
