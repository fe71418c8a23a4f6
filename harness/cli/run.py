"""`ampbench run`, `ampbench report` and `ampbench demo`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from harness.errors import UserError

console = Console(markup=False)  # labels such as "[scaffold=tools]" are data, not markup
err_console = Console(stderr=True, markup=False)


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
    task: Annotated[
        list[str] | None,
        typer.Option("--task", "--task-ids", help="Only these task ids (repeatable, or comma-separated)."),
    ] = None,
    instances: Annotated[
        Path | None,
        typer.Option(
            help="swe: SWE-bench instances (JSONL, JSON or Parquet); default: the bundled mini suite."
        ),
    ] = None,
    tasks: Annotated[int | None, typer.Option("--tasks", help="swe: only the first N instances.")] = None,
    shard: Annotated[str | None, typer.Option(help="swe: run shard i/n of the instances.")] = None,
    scaffold: Annotated[str | None, typer.Option(help="swe: agent scaffold, tools or bash-only.")] = None,
    backend: Annotated[
        str | None, typer.Option(help="swe: where commands run: local, or docker (Docker or Podman).")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="swe --backend docker: auto, docker, podman, or a command line (default $AMPBENCH_CONTAINER_ENGINE, else auto)."
        ),
    ] = None,
    images: Annotated[
        str | None,
        typer.Option(
            help="swe --backend docker: instance images: auto (official, else build), official, build."
        ),
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option(
            help="swe --backend docker: base image to build on, with {python}, e.g. python:{python}-slim."
        ),
    ] = None,
    repo_mirror: Annotated[
        Path | None, typer.Option(help="swe: directory of local git mirrors of the repos.")
    ] = None,
    step_limit: Annotated[int | None, typer.Option(help="swe: model calls per task (default 250).")] = None,
    cost_limit: Annotated[
        float | None, typer.Option(help="swe: USD per task where prices are known.")
    ] = None,
    wall_time: Annotated[float | None, typer.Option(help="swe: seconds per task.")] = None,
    guard: Annotated[
        str | None, typer.Option(help="swe: command confinement: auto, bwrap, unshare or none.")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="swe: never fetch repositories from the network.")
    ] = False,
    cassettes: Annotated[str, typer.Option(help="Cassette mode: off, record, replay, auto.")] = "off",
    cassette_dir: Annotated[str, typer.Option(help="Root folder of cassettes.")] = "cassettes",
    sim_faults: Annotated[float, typer.Option(help="Fault rate of the simulator serving sim: models.")] = 0.0,
    sim_seed: Annotated[int, typer.Option(help="Seed of the simulator's faults.")] = 0,
    sim_fault_kinds: Annotated[
        str,
        typer.Option(
            help="Simulator fault kinds, comma-separated (rate_limit, server_error, overloaded, slow, drop, stream_drop)."
        ),
    ] = "",
    sim_url: Annotated[
        str | None,
        typer.Option(
            help="URL of a running `ampbench sim serve` to use for sim: models instead of an in-process one."
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(help="Where task runs run: local, or ray (a Ray cluster; pip install 'ampbench[ray]')."),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="--executor ray: the cluster to join (host:port of `ray start --head`); default a local one."
        ),
    ] = None,
    rpm: Annotated[
        float | None,
        typer.Option(
            help="Requests per minute per provider, over all task runs (and all nodes of a cluster)."
        ),
    ] = None,
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
        try:
            config = RunConfig(**manifest["config"])
        except (KeyError, TypeError) as exc:
            raise UserError(
                f"{resume}/manifest.json has no usable run config ({exc}); it cannot be resumed"
            ) from None
    else:
        if not suite:
            raise UserError("no suite given: pass --suite (available: snitch, swe)")
        given = {
            "suite_dir": suite_dir,
            "instances": instances,
            "limit": tasks,
            "shard": shard,
            "scaffold": scaffold,
            "backend": backend,
            "engine": engine,
            "images": images,
            "base_image": base_image,
            "repo_mirror": repo_mirror,
            "step_limit": step_limit,
            "cost_limit": cost_limit,
            "wall_time_s": wall_time,
            "guard": guard,
            "network": False if offline else None,
        }
        # Only options the user gave reach the suite, which rejects the ones it does not take.
        suite_options = {k: v for k, v in given.items() if v is not None}
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
            suite_options={k: str(v) if isinstance(v, Path) else v for k, v in suite_options.items()},
            task_ids=[t for item in task for t in item.split(",") if t] if task else None,
            max_tokens=max_tokens,
            cassettes=cassettes,
            cassette_dir=cassette_dir,
            sim_faults=sim_faults,
            sim_seed=sim_seed,
            sim_fault_kinds=sim_fault_kinds,
            sim_url=sim_url,
            executor=executor,
            ray_address=ray_address,
            rpm=rpm,
        )
    if config.executor == "ray":
        from harness.ray_executor import RayRunner

        runner: Runner = RayRunner(config, resume_dir=resume, progress=progress)
    else:
        runner = Runner(config, resume_dir=resume, progress=progress)
    run_dir = runner.run()
    _print_report(run_dir, data=runner.data)
    console.print(f"results: {run_dir}")
    _exit_if_errored([run_dir])


def _exit_if_errored(run_dirs: list[Path]) -> None:
    """Exit 1, with one line saying how many and where, when any task run errored."""
    from harness.results import read_manifest

    counts = [(d, read_manifest(d).get("task_runs") or {}) for d in run_dirs]
    errored = sum(int(c.get("errored", 0)) for _, c in counts)
    if not errored:
        return
    total = sum(int(c.get("total", 0)) for _, c in counts)
    where = ", ".join(f"{d}/tasks.csv" for d, c in counts if c.get("errored"))
    err_console.print(
        f"error: {errored} of {total} task runs errored (their errors are listed above; rows in {where})",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(1)


def _default_repeats(suite: str) -> int:
    from suites import get_suite

    return int(getattr(get_suite(suite), "default_repeats", 1))


def _print_report(run_dir: Path, fmt: str = "table", data: Any = None) -> None:
    from harness import report
    from harness.results import read_run

    data = data if data is not None else read_run(run_dir)
    rows = report.summary_rows(data)
    if fmt == "json":
        print(
            json.dumps(
                {
                    "run_id": data.manifest.get("run_id"),
                    "models": rows,
                    "notes": report.notes(data, rows),
                },
                indent=2,
                default=str,
            )
        )
    elif fmt == "markdown":
        print(report.summary_markdown(data))
    else:
        console.print(report.rich_table(data, rows))
        for row in rows:
            if row["tool_calls_by_name"]:
                console.print(
                    f"tool calls of {row['model']}: "
                    + ", ".join(f"{k} {v}" for k, v in row["tool_calls_by_name"].items())
                )
        for note in report.notes(data, rows):
            console.print(f"note: {note}", highlight=False, soft_wrap=True)


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (results/<run_id>).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table, markdown or json.")] = "table",
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write one self-contained HTML page here.")
    ] = None,
) -> None:
    """Print the per-model amplification table of a run."""
    if format not in ("table", "markdown", "json"):
        raise UserError(f"unknown format {format!r} (available: table, markdown, json)")
    _print_report(run_dir, format)
    if html is not None:
        from harness.cli.analysis import write_html

        written = write_html([run_dir], html)
        console.print(f"html report: {written}", highlight=False)


def demo(
    cassette_dir: Annotated[Path | None, typer.Option(help="Cassette root holding runs.yaml.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where the replayed runs go (default: a temp dir).")
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, markdown, csv or json.")] = "table",
    concurrency: Annotated[
        int | None,
        typer.Option(help="Task runs replayed at once, across all the committed runs (default: cores + 1)."),
    ] = None,
) -> None:
    """The main job: replay the committed runs offline (no key, no network) and compare the models."""
    from harness import committed
    from harness.compare import FORMATS, compare, load_runs, print_table, render

    if format not in FORMATS:
        raise UserError(f"unknown format {format!r} (available: {', '.join(FORMATS)})")
    if concurrency is None:
        concurrency = committed.replay_slots()
    if concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    root = cassette_dir or committed.default_root()
    runs = committed.load_index(root)
    out_root = out or Path(tempfile.mkdtemp(prefix="ampbench-demo-"))
    for run in runs:
        err_console.print(
            f"replaying {run.name}: {run.suite} × {', '.join(run.models)} × {run.repeats} repeats"
        )
    # All at once: the runs replayed one after another left a core idle at their starts and ends.
    replayed = committed.replay_all(runs, root, out_root, concurrency=concurrency)
    comparison = compare(load_runs(replayed), seed=0)
    if format == "table":
        print_table(comparison, console)
    else:
        print(render(comparison, format))
    err_console.print(f"replayed runs: {out_root}  (ampbench report DIR, ampbench compare DIR...)")
    _exit_if_errored([Path(r.run_dir) for r in replayed])
