"""`ampbench ingest`: existing logs -> the result files of a run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.ingest import FORMATS


def ingest_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files or directories (walked recursively) holding the logs.",
            show_default=False,
            metavar="PATH",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write (must not hold files).")],
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help=f"Log format: {', '.join(FORMATS)} (default: detect per file)."),
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id (default ingest-<time>-<random>).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Turn existing logs (trajectories, Inspect logs, SnitchBench transcripts, vcrpy cassettes) into a run."""
    from harness.ingest import ingest

    console = Console(stderr=True)
    result = ingest(paths, out, format, run_id=run_id, progress=progress and sys.stderr.isatty())
    for skipped in result.skipped:
        console.print(f"skipped {skipped.path}: {skipped.reason}", markup=False, highlight=False)
    formats = ", ".join(f"{n} {f}" for f, n in sorted(result.formats.items()))
    print(
        f"ingested {result.files} files ({formats}): {result.tasks} tasks, {result.exchanges} exchanges, "
        f"{result.tool_calls} tool calls; {len(result.skipped)} skipped -> {result.run_dir}"
    )
