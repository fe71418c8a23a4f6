"""`ampbench compare`, `ampbench project` and the page behind `ampbench report --html`.

Machine-readable output (csv, json, markdown) goes to stdout alone; messages
about files written go to stderr, so `ampbench compare ... -f json > out.json`
stays valid JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.errors import UserError

RunDirs = Annotated[
    list[Path], typer.Argument(help="Run directories (results/<run_id>); any mix of suites and models.")
]
Seed = Annotated[int, typer.Option(help="Seed of the bootstrap; the same seed gives the same intervals.")]
Resamples = Annotated[int, typer.Option(help="Bootstrap resamples per estimate.")]


def _stdout_console():  # -> rich.console.Console
    from rich.console import Console

    return Console(markup=False)  # labels such as "[scaffold=tools]" are data, not markup


def compare_command(
    run_dirs: RunDirs,
    format: Annotated[str, typer.Option("--format", "-f", help="table, markdown, csv or json.")] = "table",
    baseline: Annotated[
        str | None,
        typer.Option(help="Model the others are compared with (spec or label; default: the first)."),
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Write the pictures (PNG and SVG) into this directory.")
    ] = None,
    seed: Seed = 0,
    resamples: Resamples = 2000,
) -> None:
    """Compare amplification per suite and model across runs, with 95% bootstrap intervals."""
    from harness import compare as cmp

    if format not in cmp.FORMATS:
        raise UserError(f"unknown format {format!r} (available: {', '.join(cmp.FORMATS)})")
    runs = cmp.load_runs(run_dirs)
    comparison = cmp.compare(runs, baseline=baseline, seed=seed, resamples=resamples)
    if format == "table":
        cmp.print_table(comparison, _stdout_console())
    else:
        sys.stdout.write(cmp.render(comparison, format))
    if plots is not None:
        from harness import plots as plotting

        for path in plotting.write_plots(runs, plots):
            print(f"wrote {path}", file=sys.stderr)


def project_command(
    run_dirs: RunDirs,
    tasks: Annotated[int | None, typer.Option("--tasks", help="Tasks in the campaign.")] = None,
    benchmark: Annotated[
        str | None,
        typer.Option(
            help="Named size: swe-bench (2294), swe-bench-verified (500), swe-bench-lite (300), snitchbench (4x20)."
        ),
    ] = None,
    models: Annotated[
        int | None, typer.Option("--models", help="Models in the campaign (default: the measured models).")
    ] = None,
    repeats: Annotated[int | None, typer.Option(help="Runs per task (default 1; snitchbench: 20).")] = None,
    include_judge: Annotated[bool, typer.Option(help="Count judge exchanges and tokens.")] = True,
    include_retries: Annotated[bool, typer.Option(help="Count retried attempts as exchanges.")] = True,
    claim: Annotated[
        float | None,
        typer.Option(help="A claimed exchange count to set against the campaign (e.g. 16000000)."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Task runs in flight at once: gives the provider-side traffic shape.")
    ] = None,
    suite: Annotated[str | None, typer.Option(help="Suite to project when the runs span several.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, markdown or json.")] = "table",
    seed: Seed = 0,
    resamples: Resamples = 2000,
) -> None:
    """Project a campaign (exchanges, model calls, tokens, cost, traffic) from measured runs."""
    from harness import compare as cmp
    from harness import project as proj

    if format not in proj.FORMATS:
        raise UserError(f"unknown format {format!r} (available: {', '.join(proj.FORMATS)})")
    runs = cmp.load_runs(run_dirs)
    projection = proj.project(
        runs,
        tasks=tasks,
        benchmark=benchmark,
        models=models,
        repeats=repeats,
        include_judge=include_judge,
        include_retries=include_retries,
        claim=claim,
        concurrency=concurrency,
        suite=suite,
        seed=seed,
        resamples=resamples,
    )
    if format == "table":
        proj.print_table(projection, _stdout_console())
    else:
        sys.stdout.write(proj.render(projection, format))


def write_html(run_dirs: list[Path], out: Path) -> Path:
    """Write the self-contained HTML report of `run_dirs` to `out` (for `ampbench report --html`)."""
    from harness.html_report import write_report

    out = Path(out)
    if out.exists() and out.is_dir():
        raise UserError(f"{out} is a directory; pass a file name such as {out / 'report.html'}")
    return write_report([Path(p) for p in run_dirs], out)
