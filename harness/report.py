"""Per-model amplification tables, computed from a loaded run (`harness.results.load`).

Nothing here parses raw files: every number comes from the DataFrames of
`RunData`, whose task rows are themselves sums over the run's exchanges.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from harness.results import RunData

SIMULATED_LABEL = " (simulated)"


def _total(series: Any) -> int | None:
    """Sum of a token column; None when no row reported it (unknown is not zero)."""
    known = series.dropna()
    return int(known.sum()) if len(known) else None


def _tool_names(column: Any) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for cell in column.dropna():
        counts.update(json.loads(cell) if isinstance(cell, str) else cell)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def model_label(model: str, simulated: bool) -> str:
    return model + (SIMULATED_LABEL if simulated else "")


def summary_rows(data: RunData) -> list[dict[str, Any]]:
    """One dict per model with the headline amplification figures."""
    tasks = data.tasks
    if tasks is None or len(tasks) == 0:
        return []
    exchanges = data.exchanges
    rows = []
    for model, group in tasks.groupby("model", sort=True):
        simulated = (
            bool(group["simulated"].astype(str).str.lower().eq("true").any())
            if "simulated" in group
            else False
        )
        agent_ex = (
            exchanges[(exchanges["model"] == model) & (exchanges["role"] == "agent")]
            if len(exchanges)
            else exchanges
        )
        requests = len(group)
        user_turns = int(group["user_turns"].sum())
        n_exchanges = int(group["exchanges"].sum())
        prompt = _total(group["prompt_tokens"]) if "prompt_tokens" in group else None
        input_tokens = _total(group["input_tokens"])
        cost = float(group["cost_usd"].dropna().sum()) if group["cost_usd"].notna().any() else None
        with_reasoning = (
            int((agent_ex["visible_reasoning_chars"].fillna(0) > 0).sum()) if len(agent_ex) else 0
        )
        rows.append(
            {
                "model": model_label(str(model), simulated),
                "requests": requests,
                "user_turns": user_turns,
                "exchanges": n_exchanges,
                "exchanges_per_request": n_exchanges / requests if requests else None,
                "exchanges_per_user_turn": n_exchanges / user_turns if user_turns else None,
                "retries": int(group["retries"].sum()),
                "failed_exchanges": int(group["failed_exchanges"].sum())
                if "failed_exchanges" in group
                else None,
                "model_calls": int(group["model_calls"].sum()),
                "tool_calls": int(group["tool_calls"].sum()),
                "tool_calls_by_name": _tool_names(group["tool_calls_by_name"])
                if "tool_calls_by_name" in group
                else {},
                "input_tokens": input_tokens,
                "output_tokens": _total(group["output_tokens"]),
                "reasoning_tokens": _total(group["reasoning_tokens"]),
                "token_amplification": (input_tokens / prompt)
                if input_tokens is not None and prompt
                else None,
                "visible_reasoning_share": with_reasoning / len(agent_ex) if len(agent_ex) else None,
                "visible_reasoning_chars": int(group["visible_reasoning_chars"].fillna(0).sum())
                if "visible_reasoning_chars" in group
                else None,
                "judge_exchanges": int(group["judge_exchanges"].fillna(0).sum())
                if "judge_exchanges" in group
                else 0,
                "cost_usd": cost,
                "score": float(group["score"].mean()) if group["score"].notna().any() else None,
                "errors": int((group["status"] == "error").sum()),
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
    ("user_turns", "user turns"),
    ("exchanges", "exchanges"),
    ("exchanges_per_request", "exch/request"),
    ("exchanges_per_user_turn", "exch/user turn"),
    ("retries", "retries"),
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


def notes(data: RunData) -> list[str]:
    """Caveats a reader needs beside the numbers."""
    out = list(data.manifest.get("limits", []))
    if data.orphaned_exchanges:
        out.append(
            f"{data.orphaned_exchanges} exchanges belong to task attempts interrupted before --resume; "
            "they reached the provider but are not in the task rows."
        )
    if data.manifest.get("status") not in (None, "complete"):
        out.append(
            f"run status: {data.manifest.get('status')} (resume with: ampbench run --resume {data.run_dir})"
        )
    if any(r["model"].endswith(SIMULATED_LABEL) for r in summary_rows(data)):
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
    for note in notes(data):
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def rich_table(data: RunData) -> Any:
    """Metrics down, models across: fits a terminal however many metrics there are."""
    from rich.table import Table

    rows = summary_rows(data)
    table = Table(
        title=f"Amplification · {data.manifest.get('suite', '')} · {data.manifest.get('run_id', '')}"
    )
    table.add_column("metric", no_wrap=True)
    for row in rows:
        table.add_column(row["model"], justify="right", overflow="fold")
    for key, header in COLUMNS[1:]:
        table.add_row(header, *(_fmt(row[key]) for row in rows))
    return table
