"""``derain run ... --ray [ADDRESS]``: the same folder job, spread over a Ray cluster."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import typer

from ..batch import STDIO
from .common import Reporter, UsageProblem


@contextlib.contextmanager
def _native_stderr_silenced(silence: bool) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null, and Python's ``sys.stderr`` to a copy of it.

    Ray's C++ core logs straight to descriptor 2 whatever its Python loggers' levels say, so
    this is the only way ``-q`` keeps it quiet; derain's own lines (and Ray's Python loggers,
    which ``derain_with_ray(quiet=True)`` sets to errors) still reach the real stderr.
    """
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # captured (tests), or no stderr
        real = False
    if not (silence and real):
        yield
        return
    sys.stderr.flush()
    kept = os.dup(2)  # never closed: Ray's log handlers may keep writing to it until exit
    original = sys.stderr
    sys.stderr = open(  # noqa: SIM115 (it outlives this block, see above)
        kept, "w", buffering=1, encoding=original.encoding, errors=original.errors, closefd=False
    )
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(kept, 2)
        sys.stderr = original


def run_on_ray(
    reporter: Reporter,
    inputs: Sequence[str],
    output: str | None,
    *,
    address: str | None,
    recursive: bool,
    overwrite: bool,
    save_rain: bool,
    **settings: Any,
) -> None:
    """Run the job with :func:`derain.ray_batch.derain_with_ray`; report as ``derain run`` does.

    ``settings`` are the fields of :class:`derain.ray_batch.RaySettings`.

    Raises:
        UsageProblem: stdin/stdout, or no ``-o`` folder (outputs must go where every worker
            can write them).
        typer.Exit: with code 1 when any input failed.
    """
    if STDIO in inputs or output in (None, STDIO):
        raise UsageProblem("--ray: needs input files or folders and an -o output folder")
    from ..ray_batch import RayInterrupted, RaySettings, derain_with_ray

    where = address or "a local Ray"
    reporter.info(f"running on {where}")
    try:
        with _native_stderr_silenced(reporter.quiet):
            report = derain_with_ray(
                inputs,
                output,
                settings=RaySettings(**settings),
                address=address,
                recursive=recursive,
                overwrite=overwrite,
                save_rain=save_rain,
                on_error=reporter.error,
                quiet=reporter.quiet,
                on_wrote=lambda path: reporter.info(f"wrote {path}"),
            )
    except RayInterrupted as stop:  # Ctrl-C: the counts so far, as `derain run` gives them
        reporter.error(f"interrupted; {stop.report.summary()}, not done {stop.report.not_done}")
        raise typer.Exit(130) from None
    for line in report.notes:
        reporter.info(line)
    reporter.info(f"{report.summary()} ({report.seconds:.1f} s, {report.workers} workers)")
    if report.failed:
        raise typer.Exit(1)
