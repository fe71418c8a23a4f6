"""Per-model amplification tables of one run (`harness.results.load`).

Nothing here computes a figure: `harness.metrics` defines every one, and
`compare` uses the same definitions, so a run's report and its comparison
print the same values.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from harness import metrics
from harness.metrics import SIMULATED_LABEL
from harness.results import RunData

__all__ = ["SIMULATED_LABEL", "error_notes", "model_label", "notes", "summary_markdown", "summary_rows"]


def model_label(model: str, simulated: bool) -> str:
    return metrics.label(model, simulated)


def tool_names(cells: Any) -> dict[str, int]:
    """Tool calls by name summed over task runs (tasks.csv keeps them as JSON objects)."""
    counts: Counter[str] = Counter()
    for cell in cells:
        if metrics.missing(cell):
            continue
        if isinstance(cell, str):
            try:
                cell = json.loads(cell)
            except json.JSONDecodeError:
                continue
        if isinstance(cell, dict):
            counts.update({str(k): int(v) for k, v in cell.items()})
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def features(data: RunData) -> list[dict[str, Any]]:
    """The per-task-run features of one run (see `metrics.task_feature_rows`), without pandas."""
    tasks = [metrics.normalise_task(r, 0, data.run_dir, data.manifest) for r in metrics.records(data.tasks)]
    metrics.add_labels(tasks)
    return metrics.task_feature_rows(tasks, sums=metrics.exchange_sums(data.exchanges, run=0))


def summary_rows(data: RunData) -> list[dict[str, Any]]:
    """One dict per group (model and variant) with the headline figures, totals and errors."""
    if data.tasks is None or len(data.tasks) == 0:
        return []
    groups: dict[str, list[dict[str, Any]]] = {}
    for feat in features(data):
        groups.setdefault(str(feat["label"]), []).append(feat)
    rows = []
    for group_label in sorted(groups):
        group = groups[group_label]
        errs = metrics.errors(group)
        rows.append(
            {
                "model": group_label,
                "model_spec": str(group[0]["model"]),
                "variant": str(group[0]["variant"]),
                "simulated": any(f["simulated"] for f in group),
                "requests": sum(1 for f in group if metrics.is_counted(f)),
                "errored": errs["errored"],
                "errors": errs["errors"],
                "errored_exchanges": errs["errored_exchanges"],
                "errored_unsent_attempts": errs["errored_unsent_attempts"],
                "no_provider": errs["no_provider"],
                **metrics.totals(group),
                **metrics.figures(group),
                "tool_calls_by_name": tool_names(
                    f["tool_calls_by_name"] for f in group if metrics.is_counted(f)
                ),
            }
        )
    return rows


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "–"
    return str(value)


COLUMNS: list[tuple[str, str]] = [
    ("model", "model"),
    ("requests", "requests"),
    ("errored", "errored"),
    ("errored_exchanges", "exch of errored"),
    ("user_turns", "user turns"),
    ("exchanges", "exchanges"),
    ("exchanges_per_request", "exch/request"),
    ("exchanges_per_user_turn", "exch/user turn"),
    ("retries", "retries"),
    ("retries_share", "retries share"),
    ("unsent_attempts", "unsent attempts"),
    ("model_calls", "model calls"),
    ("tool_calls", "tool calls"),
    ("input_tokens", "input tok"),
    ("output_tokens", "output tok"),
    ("reasoning_tokens", "reasoning tok"),
    ("token_amplification", "token amp"),
    ("visible_reasoning_share", "visible reasoning"),
    ("judge_exchanges", "judge exch"),
    ("cost_usd", "cost $"),
    ("score", "score"),
]


def error_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Per group: how many task runs errored and why, grouped by message."""
    out: list[str] = []
    for row in rows:
        out += metrics.error_lines(row["model"], row)
    return out


def notes(data: RunData, rows: list[dict[str, Any]] | None = None, *, errors: bool = True) -> list[str]:
    """Caveats a reader needs beside the numbers (errors first: they are never silent)."""
    rows = summary_rows(data) if rows is None else rows
    out = error_notes(rows) if errors else []
    out += list(data.manifest.get("limits", []))
    out += list(data.warnings)
    if data.manifest.get("refused_requests"):
        out.append(
            f"{data.manifest['refused_requests']} requests were refused by the proxy (not origin-form, "
            "never forwarded); they are not exchanges"
        )
    if data.orphaned_exchanges:
        out.append(
            f"{data.orphaned_exchanges} exchanges belong to task attempts interrupted before --resume "
            "or lost with a cluster node; they reached the provider but are not in the task rows."
        )
    if data.manifest.get("status") not in (None, "complete"):
        out.append(
            f"run status: {data.manifest.get('status')} (resume with: ampbench run --resume {data.run_dir})"
        )
    if any(r["unsent_attempts"] for r in rows):
        out.append(
            "unsent attempts never reached the provider (connection refused, DNS, TLS or connect "
            "timeout); they are kept in exchanges.jsonl with sent=false and are not exchanges."
        )
    if any(r["simulated"] for r in rows):
        out.append("models marked (simulated) are ampbench's built-in simulator, not real models.")
    return out


def summary_markdown(data: RunData) -> str:
    rows = summary_rows(data)
    lines = [f"# Run {data.manifest.get('run_id', data.run_dir.name)}", ""]
    lines.append(
        f"suite: {data.manifest.get('suite', '?')} · cassettes: {data.manifest.get('cassette_mode', 'off')}"
    )
    lines.append("")
    lines.append("| " + " | ".join(h for _, h in COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[k]) for k, _ in COLUMNS) + " |")
    lines.append("")
    for row in rows:
        if row["tool_calls_by_name"]:
            lines.append(f"- tool calls of {row['model']}: {_fmt(row['tool_calls_by_name'])}")
    for note in notes(data, rows):
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def rich_table(data: RunData, rows: list[dict[str, Any]] | None = None) -> Any:
    """Metrics down, models across: fits a terminal however many metrics there are."""
    from rich.table import Table

    rows = summary_rows(data) if rows is None else rows
    table = Table(
        title=f"Amplification · {data.manifest.get('suite', '')} · {data.manifest.get('run_id', '')}"
    )
    table.add_column("metric", no_wrap=True)
    for row in rows:
        table.add_column(row["model"], justify="right", overflow="fold")
    for key, header in COLUMNS[1:]:
        table.add_row(header, *(_fmt(row[key]) for row in rows))
    return table
