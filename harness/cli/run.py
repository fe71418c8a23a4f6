"""`ampbench run`, `ampbench report` and `ampbench demo`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.errors import UserError

console = Console()


def run(
    suite: Annotated[str | None, typer.Option("--suite", "-s", help="Suite to run (snitch, swe).")] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model spec PROVIDER:MODEL; repeatable.")
    ] = None,
    repeats: Annotated[
        int | None, typer.Option(help="Runs per task and model (default: the suite's).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Task runs in flight at once.")] = 4,
    out: Annotated[Path | None, typer.Option(help="Run directory (default results/<run_id>).")] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id (default <suite>-<time>-<random>).")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Ask providers for SSE streams.")] = False,
    judge: Annotated[
        str | None, typer.Option(help="Model spec of an LLM judge (counted as role judge).")
    ] = None,
    max_attempts: Annotated[int, typer.Option(help="HTTP attempts per model call (retries + 1).")] = 4,
    timeout: Annotated[float, typer.Option(help="Per-attempt HTTP timeout in seconds.")] = 120.0,
    max_tokens: Annotated[
        int | None, typer.Option(help="max_tokens per model call (default: the suite's).")
    ] = None,
    suite_dir: Annotated[
        Path | None, typer.Option(help="Suite data directory (e.g. a SnitchBench checkout).")
    ] = None,
    task: Annotated[list[str] | None, typer.Option("--task", help="Only this task id; repeatable.")] = None,
    cassettes: Annotated[str, typer.Option(help="Cassette mode: off, record, replay, auto.")] = "off",
    cassette_dir: Annotated[str, typer.Option(help="Root folder of cassettes.")] = "cassettes",
    resume: Annotated[Path | None, typer.Option(help="Finish an interrupted run in this directory.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run a suite against one or more models and count every exchange."""
    from harness.results import read_manifest
    from harness.runner import RunConfig, Runner

    if resume is not None:
        manifest = read_manifest(resume)
        if manifest.get("kind") != "run":
            raise UserError(f"{resume} was not written by `ampbench run`; nothing to resume")
        config = RunConfig(**manifest["config"])
    else:
        if not suite:
            raise UserError("no suite given: pass --suite (available: snitch, swe)")
        suite_options = {"suite_dir": suite_dir} if suite_dir is not None else {}
        config = RunConfig(
            suite=suite,
            models=list(model or []),
            repeats=repeats if repeats is not None else _default_repeats(suite),
            concurrency=concurrency,
            out=str(out) if out else None,
            run_id=run_id,
            stream=stream,
            judge=judge,
            max_attempts=max_attempts,
            timeout_s=timeout,
            suite_options={k: str(v) for k, v in suite_options.items()},
            task_ids=list(task) if task else None,
            max_tokens=max_tokens,
            cassettes=cassettes,
            cassette_dir=cassette_dir,
        )
    run_dir = Runner(config, resume_dir=resume, progress=progress).run()
    _print_report(run_dir)
    console.print(f"results: {run_dir}")


def _default_repeats(suite: str) -> int:
    from suites import get_suite

    return int(getattr(get_suite(suite), "default_repeats", 1))


def _print_report(run_dir: Path, fmt: str = "table") -> None:
    from harness import report
    from harness.results import load

    data = load(run_dir)
    if fmt == "json":
        print(
            json.dumps(
                {
                    "run_id": data.manifest.get("run_id"),
                    "models": report.summary_rows(data),
                    "notes": report.notes(data),
                },
                indent=2,
                default=str,
            )
        )
    elif fmt == "markdown":
        print(report.summary_markdown(data))
    else:
        console.print(report.rich_table(data))
        for row in report.summary_rows(data):
            if row["tool_calls_by_name"]:
                console.print(
                    f"tool calls of {row['model']}: "
                    + ", ".join(f"{k} {v}" for k, v in row["tool_calls_by_name"].items())
                )
        for note in report.notes(data):
            console.print(f"note: {note}")


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (results/<run_id>).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table, markdown or json.")] = "table",
) -> None:
    """Print the per-model amplification table of a run."""
    if format not in ("table", "markdown", "json"):
        raise UserError(f"unknown format {format!r} (available: table, markdown, json)")
    _print_report(run_dir, format)


def demo(
    repeats: Annotated[int, typer.Option(help="Runs per task and model.")] = 2,
) -> None:
    """The main job, offline: the snitch suite against the simulator's profiles."""
    from harness.runner import RunConfig, Runner

    out = Path(tempfile.mkdtemp(prefix="ampbench-demo-")) / "run"
    config = RunConfig(
        suite="snitch",
        models=["sim-anthropic:thorough", "sim:terse", "sim-responses:reasoner"],
        repeats=repeats,
        concurrency=8,
        out=str(out),
    )
    run_dir = Runner(config, progress=True).run()
    _print_report(run_dir)
    console.print(f"results: {run_dir}")
