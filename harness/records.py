"""The record schema: one row per exchange, one row per task run, and how one becomes the other.

`Exchange` is a line of exchanges.jsonl and `TaskRow` a line of tasks.csv; the
column lists of both files are derived from these dataclasses, so a field
added here is written and loaded everywhere. `summarise` is the only code that
turns a task run's exchange and tool-call rows into its task row: live runs,
ingest and the proxy all call it, each overriding only what it knows better
(the loop's own model-call count, a log's own token totals, a session's main
conversation).

Definitions used by every count (the README repeats them):

- an attempt is *sent* unless it provably never reached the provider
  (connection refused, DNS or TLS failure, connect or pool timeout); unsent
  attempts are kept as rows but are not exchanges;
- an exchange is *ok* when it was sent, got a 2xx status and no error;
- a token total is the sum of the values reported; None when none was (unknown
  is never 0).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TOKEN_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
)


@dataclass
class Exchange:
    """One HTTP attempt, as the ledger saw it; an exchange unless `sent` is false."""

    run_id: str
    task_id: str
    model: str
    repeat: int
    step: int
    role: str
    attempt: int
    session: int
    endpoint: str
    method: str
    host: str
    status: int | None
    streamed: bool | None
    latency_ms: float | None
    """Request's first byte written to the response's last byte read, on the wire; where there is
    no wire (a cassette replay), the time spent below the ledger."""
    request_bytes: int | None
    response_bytes: int | None
    user_turn: int | None = 0
    ttfb_ms: float | None = None
    """Request's first byte written to the response's first byte read (None where not measured)."""
    sent: bool = True
    """False when the attempt provably never reached the provider (it is then no exchange)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    tool_calls: int = 0
    tool_names: list[str] = field(default_factory=list)
    visible_reasoning_chars: int = 0
    stop_reason: str | None = None
    response_model: str | None = None
    simulated: bool = False
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    source: str | None = None
    """Who wrote the row when it is not a live run: an ingest format, or the proxy."""

    def to_dict(self) -> dict[str, Any]:
        # Shallow: `asdict` deep-copies every list and dict, once per exchange, for nothing.
        return {name: getattr(self, name) for name in _FIELD_NAMES}


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Exchange))
EXCHANGE_COLUMNS: tuple[str, ...] = _FIELD_NAMES
"""Every column of exchanges.jsonl."""

RAW_EXCHANGE_COLUMNS: frozenset[str] = frozenset({"headers", "usage"})
"""Raw objects kept on disk for tracing but not loaded into tables (memory follows the tables)."""


def exchange_defaults() -> dict[str, Any]:
    """A row with every Exchange column at its default (None where the dataclass has none)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Exchange):
        if f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None if f.default is dataclasses.MISSING else f.default
    return out


@dataclass
class TaskRow:
    """One task run (task x model x repeat): a line of tasks.csv."""

    run_id: str
    suite: str
    task_id: str
    model: str
    simulated: bool = False
    repeat: int = 0
    session: int = 0
    source: str | None = None
    status: str = "ok"
    """`ok`, or `error` when the task run failed (its counts are then partial)."""
    stop_reason: str | None = None
    user_turns: int | None = None
    model_calls: int | None = 0
    format_errors: int | None = 0
    exchanges: int = 0
    """Sent attempts of the agent: what the provider's telemetry sees."""
    unsent_attempts: int = 0
    """Attempts that provably never reached the provider (not exchanges)."""
    retries: int = 0
    """Exchanges that repeat an earlier attempt of the same model call (attempt > 1)."""
    failed_exchanges: int = 0
    tool_calls: int = 0
    tool_calls_by_name: dict[str, int] = field(default_factory=dict)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    visible_reasoning_chars: int = 0
    prompt_tokens: int | None = None
    """Input tokens of the first successful model call: what the task's own prompt costs."""
    judge_exchanges: int = 0
    judge_input_tokens: int | None = None
    judge_output_tokens: int | None = None
    cost_usd: float | None = None
    score: float | None = None
    wall_s: float | None = None
    error: str | None = None


TASK_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TaskRow))
"""The columns of tasks.csv every writer has; suites, ingest and the proxy add their own after them."""

TEXT_TASK_COLUMNS: frozenset[str] = frozenset(
    {"run_id", "suite", "task_id", "model", "simulated", "source", "status", "stop_reason"}
    | {"tool_calls_by_name", "error"}
)
NUMERIC_TASK_COLUMNS: tuple[str, ...] = tuple(c for c in TASK_COLUMNS if c not in TEXT_TASK_COLUMNS)


def missing(value: Any) -> bool:
    """None or NaN: a cell nobody filled in."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: Any) -> float:
    """A cell as a number, NaN when it is empty or not a number (as `pandas.to_numeric(errors="coerce")`)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text and "_" not in text:
            try:
                return float(text)
            except ValueError:
                pass
        return math.nan
    try:
        return float(value)  # numpy scalars
    except (TypeError, ValueError):
        return math.nan


Row = Mapping[str, Any]


def sum_known(values: Iterable[int | float | None]) -> Any:
    """Sum of the known values; None when none is known (unknown is not zero)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def is_sent(row: Row) -> bool:
    return row.get("sent", True) is not False


def is_ok(row: Row) -> bool:
    """A sent attempt that got a 2xx answer and no error."""
    status = row.get("status")
    return is_sent(row) and status is not None and 200 <= status < 300 and not row.get("error")


def summarise(
    exchanges: Iterable[Row],
    tool_calls: Iterable[Row],
    *,
    cost: Callable[[Row], float | None] | None = None,
    **known: Any,
) -> dict[str, Any]:
    """The tasks.csv row of one task run, from its own rows; `known` overrides or adds columns.

    `known` must carry the identity (run_id, suite, task_id, model, ...) and may
    override any count the caller knows better. `cost` prices one exchange row
    (None when unknown); the task's cost is the sum of the known prices.
    """
    rows = list(exchanges)
    agent_all = [r for r in rows if r.get("role", "agent") == "agent"]
    agent = [r for r in agent_all if is_sent(r)]
    judge = [r for r in rows if r.get("role") == "judge" and is_sent(r)]
    ok = [r for r in agent if is_ok(r)]
    tools = [t for t in tool_calls if t.get("role", "agent") == "agent"]
    costs = [cost(r) for r in agent] if cost is not None else []
    row = dataclasses.asdict(
        TaskRow(
            run_id=known.get("run_id", ""),
            suite=known.get("suite", ""),
            task_id=known.get("task_id", ""),
            model=known.get("model", ""),
        )
    )
    row.update(
        simulated=any(bool(r.get("simulated")) for r in rows),
        model_calls=len(ok),
        exchanges=len(agent),
        unsent_attempts=len(agent_all) - len(agent),
        retries=sum(1 for r in agent if (r.get("attempt") or 1) > 1),
        failed_exchanges=len(agent) - len(ok),
        tool_calls=len(tools),
        tool_calls_by_name=dict(sorted(Counter(str(t["tool"]) for t in tools).items())),
        visible_reasoning_chars=sum(r.get("visible_reasoning_chars") or 0 for r in agent),
        prompt_tokens=ok[0].get("input_tokens") if ok else None,
        judge_exchanges=len(judge),
        judge_input_tokens=sum_known(r.get("input_tokens") for r in judge),
        judge_output_tokens=sum_known(r.get("output_tokens") for r in judge),
        cost_usd=None if sum_known(costs) is None else round(sum_known(costs), 6),
    )
    for name in TOKEN_FIELDS:
        row[name] = sum_known(r.get(name) for r in agent)
    if known.get("simulated"):
        known = {**known, "simulated": True}
    elif "simulated" in known:
        known = {k: v for k, v in known.items() if k != "simulated"}
    row.update(known)
    return row
