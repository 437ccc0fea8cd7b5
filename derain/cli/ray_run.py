"""``derain run ... --ray [ADDRESS]``: the same folder job, spread over a Ray cluster."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import typer

from ..batch import STDIO
from .common import Reporter, UsageProblem


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
    from ..ray_batch import RaySettings, derain_with_ray

    # Ray Data logs its progress every few seconds; the command reports per file instead.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    where = address or "a local Ray"
    reporter.info(f"running on {where}")
    report = derain_with_ray(
        inputs,
        output,
        settings=RaySettings(**settings),
        address=address,
        recursive=recursive,
        overwrite=overwrite,
        save_rain=save_rain,
        on_error=reporter.error,
    )
    for line in report.notes:
        reporter.info(line)
    reporter.info(
        f"done {report.done}, skipped {report.skipped}, failed {report.failed} "
        f"({report.seconds:.1f} s, {report.workers} workers)"
    )
    if report.failed:
        raise typer.Exit(1)
