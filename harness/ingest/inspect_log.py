"""Inspect AI eval logs (`.eval` zip and `.json`), read with Inspect's own log reader.

`inspect_ai` is an optional dependency (`pip install 'ampbench[inspect]'`),
imported only when an Inspect log is read. One task row per sample (and
epoch). Each model event is one model call; its `retries` are earlier failed
attempts of the same call, so it yields `retries + 1` exchanges (the failed
attempts' HTTP statuses are not in the log). Model events served from
Inspect's local cache (`cache: read`) reached no provider and are not
exchanges. Model events inside a scorer span, or with a grader/judge role,
are judge exchanges. Tool events are tool calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.ingest._common import IngestFormatError, Origin, TaskRecord, exchange_row, notes_text, tool_row

NAME = "inspect"
SOURCE = "ingest:inspect"
INSTALL_HINT = "reading Inspect logs needs inspect_ai: pip install 'ampbench[inspect]'"
LIMITS = [
    "Inspect logs record retries per model call but not the HTTP status of the failed attempts: "
    "those exchanges have status null; retries made inside a provider SDK, if any, are not counted.",
    "Inspect model calls served from Inspect's local cache reached no provider and are not exchanges.",
]

_JUDGE_ROLES = {"grader", "judge", "scorer", "critic"}


class MissingDependency(UserError):
    """inspect_ai is not installed."""


def sniff(name: str, head: bytes, tail: bytes) -> bool:
    if name.endswith(".eval"):
        return head.startswith(b"PK")
    return name.endswith(".json") and b'"eval"' in head and b'"version"' in head and b'"status"' in head


def _reader() -> Any:
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise MissingDependency(INSTALL_HINT) from None
    return read_eval_log


def usage_tokens(usage: Any) -> dict[str, int | None]:
    """Normalise an Inspect `ModelUsage` to OTel names.

    Inspect documents `input_tokens` as excluding cache reads and writes
    (total input = input + cache_read + cache_write). Logs of older Inspect
    versions kept OpenAI's convention (prompt tokens including cached ones);
    their `total_tokens` is then input + output, which tells the two apart.
    """
    if usage is None:
        return {}
    inp, out = usage.input_tokens, usage.output_tokens
    read, write = usage.input_tokens_cache_read, usage.input_tokens_cache_write
    cached = (read or 0) + (write or 0)
    inclusive = cached > 0 and usage.total_tokens == inp + out
    return {
        "input_tokens": inp if inclusive else inp + cached,
        "output_tokens": out,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _reasoning_chars(message: Any) -> int:
    content = getattr(message, "content", None)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if getattr(part, "type", None) == "reasoning" and not getattr(part, "redacted", False):
            total += len(getattr(part, "reasoning", "") or "")
    return total


def _is_judge(event: Any, spans: dict[str, tuple[str | None, str | None]]) -> bool:
    if (getattr(event, "role", None) or "").lower() in _JUDGE_ROLES:
        return True
    span = event.span_id
    seen: set[str] = set()
    while span and span not in seen:
        seen.add(span)
        kind, parent = spans.get(span, (None, None))
        if kind == "scorer":
            return True
        span = parent
    return False


def _result_bytes(result: Any) -> int:
    if isinstance(result, str):
        return len(result.encode())
    try:
        dumped = [r.model_dump(mode="json") if hasattr(r, "model_dump") else r for r in result]
        return len(json.dumps(dumped).encode())
    except TypeError:
        return len(str(result).encode())


def _score(scores: dict[str, Any] | None) -> float | None:
    if not scores:
        return None
    from inspect_ai.scorer import value_to_float

    value = next(iter(scores.values())).value
    try:
        return float(value_to_float()(value))
    except (TypeError, ValueError):
        return None


def read(path: Path, *, run_id: str) -> list[TaskRecord]:
    read_eval_log = _reader()
    try:
        log = read_eval_log(str(path), resolve_attachments=True)
    except Exception as exc:  # Inspect raises many types for damaged zips and JSON
        raise IngestFormatError(f"Inspect could not read it ({type(exc).__name__}: {exc})") from None
    if not log.samples:
        raise IngestFormatError(f"Inspect log without samples (status {log.status})")
    records = []
    for sample in log.samples:
        records.append(_sample(log, sample, run_id))
    return records


def _sample(log: Any, sample: Any, run_id: str) -> TaskRecord:
    origin = Origin(
        run_id=run_id,
        task_id=f"{log.eval.task}/{sample.id}",
        model=str(log.eval.model),
        repeat=max(0, int(sample.epoch or 1) - 1),
    )
    record = TaskRecord(origin)
    notes: list[str] = []
    spans: dict[str, tuple[str | None, str | None]] = {}
    step = 0
    cached_calls = 0
    judge_roles: set[str] = set()
    for event in sample.events or []:
        kind = event.event
        if kind == "span_begin":
            spans[event.id] = (event.type, event.parent_id)
        elif kind == "model":
            if getattr(event, "pending", False):
                continue
            if event.cache == "read":
                cached_calls += 1
                continue
            judge = _is_judge(event, spans)
            if judge:
                judge_roles.add(event.role or "scorer")
            else:
                step += 1
            _model_event(record, origin, event, step=0 if judge else step, role="judge" if judge else "agent")
        elif kind == "tool":
            seconds = event.working_time
            record.tool_calls.append(
                tool_row(
                    origin,
                    SOURCE,
                    step=step,
                    tool=str(event.function),
                    ok=event.error is None,
                    tool_call_id=event.id,
                    duration_ms=round(seconds * 1000, 3) if seconds is not None else None,
                    output_bytes=_result_bytes(event.result),
                    role="judge" if _is_judge(event, spans) else "agent",
                )
            )
    if cached_calls:
        notes.append(f"{cached_calls} model calls served from Inspect's cache (no exchange)")
    if getattr(sample, "error_retries", None):
        notes.append(
            f"sample retried {len(sample.error_retries)} times after errors; those attempts are not in the log"
        )

    if not record.exchanges and sample.model_usage:
        # Logs written without events still have per-sample usage: keep the totals, say how they were got.
        totals = [usage_tokens(u) for u in sample.model_usage.values()]
        record.row["input_tokens"] = sum(t["input_tokens"] or 0 for t in totals)
        record.row["output_tokens"] = sum(t["output_tokens"] or 0 for t in totals)
        notes.append("no model events in the log: tokens from sample.model_usage, exchanges unknown")
    elif sample.model_usage:
        logged = sum(usage_tokens(u)["input_tokens"] or 0 for u in sample.model_usage.values())
        seen = sum(r["input_tokens"] or 0 for r in record.exchanges)
        if logged != seen:
            notes.append(f"model events sum to {seen} input tokens, sample.model_usage says {logged}")

    costs = [u.total_cost for u in (sample.model_usage or {}).values() if u.total_cost is not None]
    user_turns = sum(1 for m in sample.messages or [] if getattr(m, "role", None) == "user")
    limit = sample.limit
    record.row.update(
        status="error" if sample.error else "ok",
        stop_reason="error" if sample.error else (f"{limit.type}_limit" if limit else "completed"),
        error=sample.error.message if sample.error else None,
        user_turns=user_turns or None,
        steps=step,
        score=_score(sample.scores),
        cost_usd=sum(costs) if costs else None,
        wall_s=sample.total_time,
        exit_status=log.status,
        format=f"inspect-log-v{log.version}",
        ingest_notes=notes_text(
            notes + ([f"judge roles: {', '.join(sorted(judge_roles))}"] if judge_roles else [])
        ),
    )
    return record


def _model_event(record: TaskRecord, origin: Origin, event: Any, *, step: int, role: str) -> None:
    output = event.output
    message = output.choices[0].message if output and output.choices else None
    calls = list(getattr(message, "tool_calls", None) or [])
    usage = output.usage if output else None
    for attempt in range(1, (event.retries or 0) + 1):
        record.exchanges.append(
            exchange_row(
                origin,
                SOURCE,
                step=step,
                role=role,
                attempt=attempt,
                status=None,
                response_model=event.model,
                error="failed attempt, retried (status not in the log)",
            )
        )
    seconds = event.working_time
    record.exchanges.append(
        exchange_row(
            origin,
            SOURCE,
            step=step,
            role=role,
            attempt=(event.retries or 0) + 1,
            status=None if event.error else 200,
            error=event.error,
            latency_ms=round(seconds * 1000, 3) if seconds is not None else None,
            tool_calls=len(calls),
            tool_names=[c.function for c in calls],
            visible_reasoning_chars=_reasoning_chars(message),
            stop_reason=output.stop_reason if output else None,
            response_model=(output.model if output and output.model else None) or event.model,
            usage=usage.model_dump(exclude_none=True) if usage is not None else None,
            **usage_tokens(usage),
        )
    )
