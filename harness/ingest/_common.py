"""Row builders shared by the ingest formats.

Ingested rows have exactly the columns of live rows (the `Exchange` dataclass
for exchanges.jsonl, the loop's tool rows for tool_calls.jsonl, `TASK_COLUMNS`
for tasks.csv), plus a `source` naming the format. Where a log does not say
something (latency, HTTP status of a trajectory's model call, tokens of a
transcript) the value is None, never a made-up 0.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.ledger import Exchange

# Extra tasks.csv columns every ingested run carries (RunWriter's extra_task_columns).
EXTRA_TASK_COLUMNS: tuple[str, ...] = (
    "exchanges_exact",
    "steps",
    "exit_status",
    "format",
    "source_file",
    "ingest_notes",
)

# (name, default, factory) of every Exchange column, in dataclass order.
_EXCHANGE_FIELDS: list[tuple[str, Any, Any]] = [
    (
        f.name,
        None if f.default is dataclasses.MISSING else f.default,
        None if f.default_factory is dataclasses.MISSING else f.default_factory,
    )
    for f in dataclasses.fields(Exchange)
]


class IngestFormatError(Exception):
    """A file that claims a format (by name or content) but does not hold what that format needs."""


@dataclass(frozen=True)
class Origin:
    """Who the rows of one ingested task belong to."""

    run_id: str
    task_id: str
    model: str
    repeat: int = 0
    session: int = 0


@dataclass
class TaskRecord:
    """One tasks.csv row with the exchange and tool-call rows it was computed from."""

    origin: Origin
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)
    """Format-specific task fields; `finish_row` fills the rest from the rows above."""

    def with_repeat(self, repeat: int) -> TaskRecord:
        """The same record under another repeat number (two files of one task and model)."""
        origin = dataclasses.replace(self.origin, repeat=repeat)
        for r in (*self.exchanges, *self.tool_calls):
            r["repeat"] = repeat
        self.row["repeat"] = repeat
        return dataclasses.replace(self, origin=origin)


def exchange_row(origin: Origin, source: str, **values: Any) -> dict[str, Any]:
    """An exchanges.jsonl row with every `Exchange` column; unknown values stay None."""
    row = {name: factory() if factory is not None else default for name, default, factory in _EXCHANGE_FIELDS}
    row.update(
        run_id=origin.run_id,
        task_id=origin.task_id,
        model=origin.model,
        repeat=origin.repeat,
        session=origin.session,
        role="agent",
        attempt=1,
        # Not in any log format: unknown rather than zero.
        latency_ms=None,
        request_bytes=None,
        response_bytes=None,
        streamed=None,
    )
    unknown = set(values) - set(row)
    if unknown:
        raise TypeError(f"not exchange columns: {sorted(unknown)}")
    row.update(values)
    row["source"] = source
    return row


def tool_row(
    origin: Origin,
    source: str,
    *,
    step: int | None,
    tool: str,
    ok: bool | None = None,
    tool_call_id: str | None = None,
    duration_ms: float | None = None,
    output_bytes: int | None = None,
    user_turn: int | None = None,
    role: str = "agent",
) -> dict[str, Any]:
    """A tool_calls.jsonl row with the live loop's columns; `ok`/duration/bytes None when not logged."""
    return {
        "run_id": origin.run_id,
        "task_id": origin.task_id,
        "model": origin.model,
        "repeat": origin.repeat,
        "session": origin.session,
        "step": step,
        "user_turn": user_turn,
        "tool_call_id": tool_call_id,
        "tool": tool,
        "ok": ok,
        "duration_ms": duration_ms,
        "output_bytes": output_bytes,
        "role": role,
        "source": source,
    }


def sum_known(values: Iterable[int | None]) -> int | None:
    """Sum of the known values; None when none is known (unknown is not zero)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _ok(row: dict[str, Any]) -> bool:
    status = row.get("status")
    return status is not None and 200 <= status < 300 and not row.get("error")


def finish_row(record: TaskRecord, *, run_id: str, suite: str, source: str) -> dict[str, Any]:
    """The tasks.csv row: counts summed from the record's own rows, then the format's fields on top.

    Formats override what their rows cannot carry (SWE-agent's per-instance token
    totals, api_calls as model_calls, the file's own cost).
    """
    agent = [r for r in record.exchanges if r["role"] == "agent"]
    judge = [r for r in record.exchanges if r["role"] == "judge"]
    ok = [r for r in agent if _ok(r)]
    tools = [t for t in record.tool_calls if t.get("role", "agent") == "agent"]
    first_input = next((r["input_tokens"] for r in ok if r.get("input_tokens") is not None), None)
    row: dict[str, Any] = {
        "run_id": run_id,
        "suite": suite,
        "task_id": record.origin.task_id,
        "model": record.origin.model,
        "simulated": False,
        "repeat": record.origin.repeat,
        "session": record.origin.session,
        "source": source,
        "status": "ok",
        "stop_reason": None,
        "user_turns": None,
        "model_calls": len(ok),
        "exchanges": len(agent),
        "retries": sum(1 for r in agent if (r.get("attempt") or 1) > 1),
        "failed_exchanges": len(agent) - len(ok),
        "tool_calls": len(tools),
        "tool_calls_by_name": dict(sorted(Counter(t["tool"] for t in tools).items())),
        "input_tokens": sum_known(r.get("input_tokens") for r in agent),
        "output_tokens": sum_known(r.get("output_tokens") for r in agent),
        "cache_read_input_tokens": sum_known(r.get("cache_read_input_tokens") for r in agent),
        "cache_creation_input_tokens": sum_known(r.get("cache_creation_input_tokens") for r in agent),
        "reasoning_tokens": sum_known(r.get("reasoning_tokens") for r in agent),
        "visible_reasoning_chars": sum(r.get("visible_reasoning_chars") or 0 for r in agent),
        "prompt_tokens": first_input,
        "judge_exchanges": len(judge),
        "judge_input_tokens": sum_known(r.get("input_tokens") for r in judge),
        "judge_output_tokens": sum_known(r.get("output_tokens") for r in judge),
        "cost_usd": None,
        "score": None,
        "wall_s": None,
        "error": None,
        "exchanges_exact": False,
    }
    row.update(record.row)
    return row


def display_path(path: Path, root: Path | None) -> str:
    """A file's path relative to the input it was found under (stable across machines)."""
    if root is not None and root.is_dir():
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.name


def notes_text(notes: list[str]) -> str | None:
    return "; ".join(notes) if notes else None
