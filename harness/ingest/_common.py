"""Row builders shared by the ingest formats.

Ingested rows have exactly the columns of live rows (`harness.records.Exchange`
for exchanges.jsonl, the loop's tool rows for tool_calls.jsonl, `summarise` for
tasks.csv), plus a `source` naming the format. Where a log does not say
something (latency, HTTP status of a trajectory's model call, tokens of a
transcript) the value is None, never a made-up 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.records import exchange_defaults, summarise

# Extra tasks.csv columns every ingested run carries (RunWriter's extra_task_columns).
EXTRA_TASK_COLUMNS: tuple[str, ...] = (
    "exchanges_exact",
    "steps",
    "exit_status",
    "format",
    "source_file",
    "ingest_notes",
    "no_provider_reason",
)

NO_PROVIDER_REASONS: dict[str, str] = {
    "demonstration": "steps written by hand (or replayed) with no model call counted",
    "replay": "recorded actions re-issued by a replay model",
    "human": "actions typed by a person through a human model",
    "test model": "outputs scripted in a deterministic test model",
}
"""Values of the `no_provider_reason` column: why no provider saw a task's model calls."""


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
    row = exchange_defaults()
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


def finish_row(record: TaskRecord, *, run_id: str, suite: str, source: str) -> dict[str, Any]:
    """The tasks.csv row: `harness.records.summarise` over the record's own rows, the format's fields on top.

    Formats override what their rows cannot carry (SWE-agent's per-instance token
    totals, api_calls as model_calls, the file's own cost).
    """
    origin = record.origin
    known: dict[str, Any] = {
        "run_id": run_id,
        "suite": suite,
        "task_id": origin.task_id,
        "model": origin.model,
        "repeat": origin.repeat,
        "session": origin.session,
        "source": source,
        "status": "ok",
        "exchanges_exact": False,
    }
    return summarise(record.exchanges, record.tool_calls, **{**known, **record.row})


def without_provider(record: TaskRecord, reason: str, note: str) -> None:
    """Mark a task whose model calls no provider saw: no exchange rows, 0 model calls, tokens and cost unknown.

    Its steps and tool calls stay (the actions did run). `reason` is one of
    `NO_PROVIDER_REASONS`; `note` says what in the file showed it.
    """
    if reason not in NO_PROVIDER_REASONS:
        raise ValueError(f"unknown no-provider reason {reason!r}")
    record.exchanges.clear()
    record.row.update(
        model_calls=0,
        input_tokens=None,
        output_tokens=None,
        cache_read_input_tokens=None,
        cache_creation_input_tokens=None,
        reasoning_tokens=None,
        prompt_tokens=None,
        cost_usd=None,
        no_provider_reason=reason,
    )
    notes = [n for n in (record.row.get("ingest_notes"), f"no provider call ({reason}): {note}") if n]
    record.row["ingest_notes"] = notes_text(notes)


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
