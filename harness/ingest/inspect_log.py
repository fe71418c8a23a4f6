"""Inspect AI eval logs (`.eval` zip and `.json`), read with Inspect's own log reader.

`inspect_ai` is an optional dependency (`pip install 'ampbench[inspect]'`),
imported only when an Inspect log is read. One task row per sample (and
epoch). Tool events are tool calls. Model events inside a scorer span, or
with a grader/judge role, are judge exchanges. Model events served from
Inspect's local cache (`cache: read`) reached no provider and are not
exchanges.

A model call (one `generate`) can take several attempts. Inspect writes
every outer attempt as its own model event; the failed ones carry `error`.
Two layouts exist:

- per-attempt logs: each event carries `call_id` (shared by the attempts of
  one call) and `attempt` (1..n); the last event also has `call_retries`,
  `http_retries` and a `retries` that repeats them. The events of one
  `call_id` are one model call: one exchange per event, attempt numbers
  1..n, and `retries` is not added again.
- older logs (no `call_id`): a failed event followed, in the same span, by
  an event of the same model and role with the same input is an earlier
  attempt of that call. An event's own `retries` counts HTTP retries made
  while that attempt was in flight (inside the provider SDK); each is one
  more failed exchange before the event.

The installed `inspect_ai` may predate `call_id`/`attempt` (its reader then
drops them), so those fields are read from the raw log when it has them.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.ingest._common import IngestFormatError, Origin, TaskRecord, exchange_row, notes_text, tool_row

NAME = "inspect"
SOURCE = "ingest:inspect"
INSTALL_HINT = "reading Inspect logs needs inspect_ai: pip install 'ampbench[inspect]'"
LIMITS = [
    "Inspect logs record each failed attempt of a model call (or, in older logs, a retry count), but "
    "seldom the HTTP status of a failed attempt: those exchanges have status null unless the event "
    "kept its provider request ids.",
    "Inspect model calls served from Inspect's local cache reached no provider and are not exchanges.",
]

_JUDGE_ROLES = {"grader", "judge", "scorer", "critic"}

# Fields of per-attempt model events (Inspect's `ModelGenerateAccounting`).
_ATTEMPT_FIELDS = ("call_id", "attempt", "call_retries", "http_retries")


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
    attempt_fields = _raw_attempt_fields(path)
    records = []
    for sample in log.samples:
        key = (str(sample.id), int(sample.epoch or 1))
        records.append(_sample(log, sample, run_id, attempt_fields.get(key, {})))
    return records


def _raw_attempt_fields(path: Path) -> dict[tuple[str, int], dict[str | int, dict[str, Any]]]:
    """Per-attempt fields of the model events, by sample (id, epoch), then by event uuid and model-event index.

    Empty when the installed inspect_ai knows the fields itself (they are then on
    the events) or when the log has none.
    """
    from inspect_ai.event import ModelEvent

    if "call_id" in ModelEvent.model_fields:
        return {}
    samples: list[Any] = []
    with open(path, "rb") as handle:
        is_zip = handle.read(2) == b"PK"
    if is_zip:
        with contextlib.suppress(ImportError):
            import inspect_ai._util.zipfile  # noqa: F401  (Inspect's zstd members, before Python 3.14)
        with zipfile.ZipFile(path) as archive:
            for name in dict.fromkeys(archive.namelist()):
                if name.startswith("samples/") and name.endswith(".json"):
                    data = archive.read(name)
                    if b'"call_id"' in data:
                        samples.append(json.loads(data))
    else:
        data = path.read_bytes()
        if b'"call_id"' in data:
            samples = json.loads(data).get("samples") or []
    out: dict[tuple[str, int], dict[str | int, dict[str, Any]]] = {}
    for raw in samples:
        if not isinstance(raw, dict):
            continue
        fields: dict[str | int, dict[str, Any]] = {}
        models = [e for e in raw.get("events") or [] if isinstance(e, dict) and e.get("event") == "model"]
        for index, event in enumerate(models):
            found = {k: event[k] for k in _ATTEMPT_FIELDS if event.get(k) is not None}
            if found:
                fields[index] = found
                if event.get("uuid"):
                    fields[str(event["uuid"])] = found
        if fields:
            out[(str(raw.get("id")), int(raw.get("epoch") or 1))] = fields
    return out


@dataclass
class _Call:
    """One model call (one `generate`) and the attempts seen of it so far."""

    step: int
    role: str
    attempts: int = 0
    last: Any = None
    """Its latest model event."""


def _attempt_info(event: Any, index: int, raw: dict[str | int, dict[str, Any]]) -> dict[str, Any]:
    """call_id/attempt/... of a model event: its own attributes, else the raw log's fields."""
    found = raw.get(str(event.uuid)) if event.uuid else None
    found = dict(found if found is not None else raw.get(index, {}))
    for name in _ATTEMPT_FIELDS:
        value = getattr(event, name, None)
        if value is not None:
            found[name] = value
    return found


def _same_input(a: Any, b: Any) -> bool:
    """Two model events sent the same conversation (a retry resends it unchanged)."""
    x, y = list(a.input or []), list(b.input or [])
    if len(x) != len(y):
        return False
    if all(getattr(m, "id", None) for m in x + y):
        return [m.id for m in x] == [m.id for m in y]
    return [getattr(m, "text", None) for m in x] == [getattr(m, "text", None) for m in y]


def _retry_of(previous: _Call | None, event: Any, role: str) -> bool:
    """An older-format event that repeats a failed attempt of the previous call in its span."""
    if previous is None or previous.last is None:
        return False
    last = previous.last
    return (
        previous.role == role
        and bool(last.error)
        and last.model == event.model
        and last.role == event.role
        and _same_input(last, event)
    )


def _sample(log: Any, sample: Any, run_id: str, raw: dict[str | int, dict[str, Any]]) -> TaskRecord:
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
    hidden_http_retries = 0
    judge_roles: set[str] = set()
    calls: dict[str, _Call] = {}
    """Per-attempt calls by call_id."""
    last_in_span: dict[str | None, _Call] = {}
    """Older format: the latest call of each span, which a retry continues."""
    model_index = -1
    for event in sample.events or []:
        kind = event.event
        if kind == "span_begin":
            spans[event.id] = (event.type, event.parent_id)
        elif kind == "model":
            model_index += 1
            if getattr(event, "pending", False):
                continue
            if event.cache == "read":
                cached_calls += 1
                continue
            judge = _is_judge(event, spans)
            role = "judge" if judge else "agent"
            info = _attempt_info(event, model_index, raw)
            call_id = info.get("call_id")
            call = calls.get(str(call_id)) if call_id is not None else None
            if call is None and call_id is None and _retry_of(last_in_span.get(event.span_id), event, role):
                call = last_in_span[event.span_id]
            if call is None:
                if judge:
                    judge_roles.add(event.role or "scorer")
                else:
                    step += 1
                call = _Call(step=0 if judge else step, role=role)
                if call_id is not None:
                    calls[str(call_id)] = call
            last_in_span[event.span_id] = call
            # Per-attempt events: `retries` repeats the call's own count (the other events); older
            # events: `retries` are HTTP retries inside this attempt, not logged as events.
            inner = 0 if call_id is not None else (event.retries or 0)
            _model_event(record, origin, event, call, inner_retries=inner)
            http, outer = info.get("http_retries"), info.get("call_retries")
            if isinstance(http, int) and isinstance(outer, int) and http > outer:
                hidden_http_retries += http - outer
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
    if hidden_http_retries:
        notes.append(
            f"{hidden_http_retries} HTTP retry signals beyond the logged attempts (http_retries > "
            "call_retries) are not counted as exchanges"
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


def _statuses(event: Any, n: int) -> list[int | None]:
    """HTTP status of each of an event's n exchanges: from its provider request ids when it kept one per
    exchange, else unknown for failed ones and 200 for a success."""
    ids = list(getattr(event, "request_ids", None) or [])
    if len(ids) == n:
        return [getattr(i, "status", None) for i in ids]
    final: int | None = None if event.error else 200
    if event.error and ids and getattr(ids[-1], "status", None) is not None:
        final = ids[-1].status
    return [None] * (n - 1) + [final]


def _model_event(record: TaskRecord, origin: Origin, event: Any, call: _Call, *, inner_retries: int) -> None:
    """The exchange rows of one model event: `inner_retries` failed ones, then the event's own attempt."""
    output = event.output
    message = output.choices[0].message if output and output.choices else None
    # A failed attempt's output is not what the agent went on with: no tool calls from it.
    calls = [] if event.error else list(getattr(message, "tool_calls", None) or [])
    usage = output.usage if output else None
    statuses = _statuses(event, inner_retries + 1)
    for status in statuses[:-1]:
        call.attempts += 1
        record.exchanges.append(
            exchange_row(
                origin,
                SOURCE,
                step=call.step,
                role=call.role,
                attempt=call.attempts,
                status=status,
                response_model=event.model,
                error="failed attempt, retried (HTTP retry inside the model call)",
            )
        )
    seconds = event.working_time
    call.attempts += 1
    call.last = event
    record.exchanges.append(
        exchange_row(
            origin,
            SOURCE,
            step=call.step,
            role=call.role,
            attempt=call.attempts,
            status=statuses[-1],
            error=event.error,
            latency_ms=round(seconds * 1000, 3) if seconds is not None else None,
            tool_calls=len(calls),
            tool_names=[c.function for c in calls],
            visible_reasoning_chars=_reasoning_chars(message),
            stop_reason=output.stop_reason if output and not event.error else None,
            response_model=(output.model if output and output.model else None) or event.model,
            usage=usage.model_dump(exclude_none=True) if usage is not None else None,
            **usage_tokens(usage),
        )
    )
