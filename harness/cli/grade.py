"""`ampbench grade`: SWE-bench style grading of any agent's predictions.

The predictions are graded in the environments `ampbench run --suite swe` grades its own
task runs in (the same settings: config.yaml, --backend, --engine, ...), one fresh
workspace per prediction; see suites/swe/grading.py for what a grade checks.

Written to --out: grades.jsonl (one row per prediction, as each finishes) and
report.json (the official harness's summary). Exit 0 when every graded prediction got
a verdict, 1 when any environment failed (env_error, error), 2 for bad input.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from harness.errors import Interrupted, UserError

console = Console(markup=False)  # reasons and ids are data, not markup
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

FORMATS = ("table", "json")


def grade_command(
    predictions: Annotated[
        Path | None,
        typer.Argument(
            metavar="PREDS",
            help="Predictions: SWE-bench preds.jsonl (instance_id, model_name_or_path, model_patch), "
            "a JSON list, or mini-swe-agent's preds.json keyed by instance id.",
            show_default=False,
        ),
    ] = None,
    instances: Annotated[
        Path | None,
        typer.Option(
            help="SWE-bench instances (JSONL, JSON or Parquet), e.g. suites/swe/instances.jsonl.",
            show_default=False,
        ),
    ] = None,
    gold: Annotated[
        bool,
        typer.Option(
            "--gold", help="Grade each instance's own gold patch instead of PREDS (checks the environments)."
        ),
    ] = False,
    backend: Annotated[
        str | None,
        typer.Option(help="Where the tests run: local, or docker (Docker or Podman). Default: local."),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="--backend docker: auto, docker, podman, or a command line (default $AMPBENCH_CONTAINER_ENGINE, else config)."
        ),
    ] = None,
    images: Annotated[
        str | None,
        typer.Option(help="--backend docker: instance images: auto (official, else build), official, build."),
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option(
            help="--backend docker: base image to build on, with {python}, e.g. python:{python}-slim."
        ),
    ] = None,
    repo_mirror: Annotated[
        Path | None, typer.Option(help="Directory of local git mirrors of the repos (owner__name).")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Never fetch repositories from the network.")
    ] = False,
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task", "--task-ids", help="Only these instance ids (repeatable, or comma-separated)."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Predictions graded at once.")] = 2,
    out: Annotated[
        Path | None,
        typer.Option(help="Where grades.jsonl and report.json go (default results/grade-<UTC time>)."),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="table or json (the rows, on stdout).")
    ] = "table",
) -> None:
    """Grade predictions (or the gold patches) SWE-bench style, in ampbench's environments."""
    from harness.redact import Scrubber, is_secret_name
    from suites.swe import batch_grade
    from suites.swe.grading import read_predictions
    from suites.swe.instances import select
    from suites.swe.suite import SweSuite

    if format not in FORMATS:
        raise UserError(f"unknown format {format!r} (available: {', '.join(FORMATS)})")
    if concurrency < 1:
        raise UserError(f"--concurrency must be at least 1, got {concurrency}")
    if predictions is not None and gold:
        raise UserError("give either a predictions file (PREDS) or --gold, not both")
    if predictions is None and not gold:
        raise UserError("nothing to grade: give a predictions file (PREDS) or --gold")
    if instances is None:
        raise UserError("no instances given: pass --instances FILE (the SWE-bench instances PREDS is for)")
    if (backend or "local") != "docker":
        given = [
            name
            for name, value in (("--engine", engine), ("--images", images), ("--base-image", base_image))
            if value
        ]
        if given:
            raise UserError(
                f"{', '.join(given)} {'apply' if len(given) > 1 else 'applies'} to --backend docker only"
            )

    rows = read_predictions(predictions) if predictions is not None else None
    options: dict[str, Any] = {
        "backend": backend,
        "engine": engine,
        "images": images,
        "base_image": base_image,
        "repo_mirror": repo_mirror,
    }
    suite = SweSuite(
        instances=instances,
        network=not offline,
        **{k: v for k, v in options.items() if v is not None},
    )
    known = list(suite.instances.values())
    task_ids = [t for item in task for t in item.split(",") if t.strip()] if task else None
    selected = select(known, task_ids=task_ids) if task_ids else known

    if rows is not None:
        preds = batch_grade.predictions_from_rows(rows, str(predictions))
        chosen = batch_grade.plan(known, preds, selected=selected)
    else:
        preds, without = batch_grade.gold_predictions(selected)
        for instance_id in without:
            _warn(f"warning: {instance_id} has no gold patch in {instances}; not graded")
        chosen = batch_grade.plan(known, preds, selected=selected)
        chosen.missing = [i for i in chosen.missing if i not in without]
    for prediction in chosen.unknown:
        _warn(
            f"warning: prediction for {prediction.instance_id} ({prediction.model or 'no model'}) is not an instance of {instances}; not graded"
        )
    for (instance_id, model), count in chosen.replaced.items():
        _warn(
            f"warning: {count + 1} predictions for {instance_id} by {model or 'no model'}: "
            "the last one is graded (as SWE-bench's harness does)"
        )
    if chosen.not_selected:
        _warn(f"note: {chosen.not_selected} predictions for instances outside --task are not graded")
    if chosen.missing:
        _warn(f"note: {len(chosen.missing)} of {len(selected)} instances have no prediction; not graded")
    if not chosen.jobs:
        raise UserError("nothing to grade: no prediction matches an instance of " + str(instances))

    scrub = Scrubber(v for k, v in os.environ.items() if is_secret_name(k))
    out_dir = out or Path("results") / f"grade-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    grades_path, report_path = out_dir / "grades.jsonl", out_dir / "report.json"
    if grades_path.exists():
        raise UserError(f"{out_dir} already holds grades.jsonl: choose another --out")
    for line in suite.clean_stale():
        _warn(f"note: {line}")
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "instances_file": str(instances),
        "predictions_file": str(predictions) if predictions is not None else None,
        "gold": gold,
        "backend": suite.backend,
        "task_ids": task_ids,
    }

    graded: list[batch_grade.Graded] = []  # as they finish
    _warn(
        f"grading {len(chosen.jobs)} predictions ({suite.backend} backend, {concurrency} at a time) into {out_dir}"
    )
    with grades_path.open("w", encoding="utf-8") as fh:

        def on_result(result: batch_grade.Graded) -> None:
            graded.append(result)
            fh.write(scrub(json.dumps(result.to_dict(), ensure_ascii=False)) + "\n")
            fh.flush()
            r = result.result
            _warn(
                f"[{len(graded)}/{len(chosen.jobs)}] {r.instance_id} ({result.prediction.model or '-'}): {r.status}"
            )

        previous = _sigterm_interrupts()
        try:
            results = batch_grade.grade_predictions(
                chosen.jobs,
                suite.grading_workspaces(),
                concurrency=concurrency,
                timeout_s=suite.grade_timeout_s,
                on_result=on_result,
            )
        except KeyboardInterrupt:
            _write_report(
                report_path, batch_grade.report(graded, chosen, interrupted=True, **settings), scrub
            )
            raise Interrupted(
                f"interrupted: {len(graded)} of {len(chosen.jobs)} predictions graded; "
                f"their rows are in {grades_path}"
            ) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    _write_report(report_path, batch_grade.report(results, chosen, **settings), scrub)

    table_rows = [{k: scrub(v) if isinstance(v, str) else v for k, v in g.to_row().items()} for g in results]
    if format == "json":
        print(json.dumps(table_rows, indent=2, ensure_ascii=False))
        _warn(f"results: {out_dir}")
    else:
        _print_table(table_rows)
        console.print(f"results: {out_dir}", highlight=False, soft_wrap=True)

    failed = Counter(g.result.status for g in results if g.result.status in batch_grade.NO_VERDICT)
    if failed:
        kinds = ", ".join(f"{n} {s}" for s, n in sorted(failed.items()))
        _warn(
            f"error: {sum(failed.values())} of {len(results)} graded predictions got no verdict ({kinds}): "
            f"the environments need attention (reasons above; rows in {grades_path})"
        )
        raise typer.Exit(1)


def _warn(line: str) -> None:
    from harness.redact import scrub_patterns

    err_console.print(scrub_patterns(line))


def _sigterm_interrupts() -> Any:
    """Make SIGTERM stop grading like Ctrl-C; returns the handler it replaced."""

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, on_sigterm)


def _write_report(path: Path, data: dict[str, Any], scrub: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(scrub(json.dumps(data, indent=2, ensure_ascii=False)) + "\n", encoding="utf-8")
    partial.replace(path)


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="grades", caption="F2P / P2P: FAIL_TO_PASS / PASS_TO_PASS tests passed / total")
    # Ids, statuses and counts stay whole; the reason wraps.
    table.add_column("instance_id", no_wrap=True)
    table.add_column("model", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("F2P", justify="right", no_wrap=True)
    table.add_column("P2P", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold", min_width=12)
    for row in rows:
        table.add_row(
            row["instance_id"],
            row["model"] or "-",
            row["status"],
            row["fail_to_pass"],
            row["pass_to_pass"],
            row["reason"] or "",
        )
    console.print(table)
    totals = Counter(row["status"] for row in rows)
    console.print(
        f"totals: {len(rows)} graded: " + ", ".join(f"{status} {n}" for status, n in totals.most_common()),
        highlight=False,
        soft_wrap=True,
    )
