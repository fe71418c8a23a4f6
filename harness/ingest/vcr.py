"""vcrpy cassettes (YAML or JSON) recorded against LLM providers.

Every interaction with a model endpoint (Anthropic `/v1/messages`, OpenAI
`/v1/chat/completions` or `/v1/responses`, any OpenAI-compatible provider's
`.../chat/completions`) is one exchange. Cassettes are read by
`harness.recorded.read_cassette` and each response body is parsed by
`harness.wire.parse_exchange`, the same parsers the live ledger
uses, so ingested rows look exactly like live ones. One task per file.

A cassette cannot tell a retry from a second recording of the same call
except through the SDK's `x-stainless-retry-count` request header, which
gives the attempt number when it was kept. A first attempt whose conversation
is no longer than the previous request's starts the conversation over: such
restarts are flagged in `ingest_notes` as likely re-recordings appended to
the cassette.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness import prices
from harness.context import ExchangeContext
from harness.ingest._common import IngestFormatError, Origin, TaskRecord, notes_text, tool_row
from harness.ledger import exchange_from_turn
from harness.recorded import RecordedInteraction, read_cassette
from harness.wire import parse_exchange, wire_for_path

NAME = "vcr"
SOURCE = "ingest:vcr"
LIMITS = [
    "Cassettes hold the HTTP exchanges a test suite recorded: counts are exact for what was recorded, "
    "but a cassette may hold re-recorded duplicates of the same call (flagged in ingest_notes) and "
    "never shows requests a test replayed from elsewhere.",
    "Cassettes have no latency: latency_ms is empty.",
]

# The response headers the live ledger keeps (harness.ledger._KEPT_HEADERS).
_KEPT_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry", "request-id", "x-request-id")
_PRICE_PROVIDER = {"api.anthropic.com": "anthropic", "api.openai.com": "openai"}


def sniff(name: str, head: bytes, tail: bytes) -> bool:
    if name.endswith((".yaml", ".yml")):
        return b"interactions:" in head
    return name.endswith(".json") and b'"interactions"' in head


def _header(headers: dict[str, Any], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return (value[0] if value else None) if isinstance(value, list) else value
    return None


def _request_json(interaction: RecordedInteraction) -> dict[str, Any]:
    try:
        value = json.loads(interaction.request_body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _is_text_user(message: Any) -> bool:
    """A user message that is the user's own words, not a tool result fed back."""
    if not isinstance(message, dict) or message.get("role") != "user":
        return False
    content = message.get("content")
    if isinstance(content, list):
        return any(
            isinstance(b, dict) and b.get("type") not in ("tool_result", "function_call_output")
            for b in content
        )
    return content is not None


def _user_turns(request: dict[str, Any]) -> int | None:
    """User messages in a request body (Messages/Chat `messages`, Responses `input`)."""
    messages = request.get("messages")
    if messages is None:
        items = request.get("input")
        if isinstance(items, str):
            return 1
        messages = items
    if not isinstance(messages, list):
        return None
    return sum(1 for m in messages if _is_text_user(m))


def _conversation_length(request: dict[str, Any]) -> int | None:
    """Messages (or Responses input items) a request sends; None when it continues a stored response."""
    if request.get("previous_response_id"):
        return None
    items = request.get("messages", request.get("input"))
    return len(items) if isinstance(items, list) else (1 if isinstance(items, str) else None)


# Provider stop reasons -> the loop's stop_reason words, where one fits.
_STOP_REASONS = {
    "end_turn": "completed",
    "stop": "completed",
    "completed": "completed",
    "stop_sequence": "completed",
    "max_tokens": "max_tokens",
    "length": "max_tokens",
    "incomplete": "max_tokens",
    "tool_use": "tool_calls",
    "tool_calls": "tool_calls",
}


def _stop_reason(row: dict[str, Any]) -> str | None:
    """The task's stop reason from its last exchange (`tool_calls`: the recording ended mid-loop)."""
    reason = row.get("stop_reason")
    if row.get("tool_calls"):
        return "tool_calls"
    return _STOP_REASONS.get(str(reason), reason) if reason else None


def _attempt(interaction: RecordedInteraction) -> int:
    value = _header(interaction.request_headers, "x-stainless-retry-count")
    try:
        return int(value) + 1 if value is not None else 1
    except ValueError:
        return 1


def read(path: Path, *, run_id: str, task_id: str | None = None) -> list[TaskRecord]:
    try:
        interactions = read_cassette(path)
    except ValueError as exc:
        raise IngestFormatError(str(exc).removeprefix(f"{path}: ")) from None
    model_interactions = [i for i in interactions if wire_for_path(i.path) is not None]
    if not model_interactions:
        raise IngestFormatError(f"no LLM API interaction among its {len(interactions)} interactions")
    requests = [_request_json(i) for i in model_interactions]
    models = Counter(str(r["model"]) for r in requests if r.get("model"))
    model = models.most_common(1)[0][0] if models else "unknown"
    origin = Origin(run_id=run_id, task_id=task_id or path.name.rsplit(".", 1)[0], model=model)
    record = TaskRecord(origin)
    notes: list[str] = []
    if len(model_interactions) < len(interactions):
        notes.append(f"{len(interactions) - len(model_interactions)} non-LLM interactions ignored")

    step = 0
    restarts = 0
    previous_length: int | None = None
    total_cost: float | None = None
    for interaction, request in zip(model_interactions, requests, strict=True):
        attempt = _attempt(interaction)
        if attempt == 1:
            step += 1
            length = _conversation_length(request)
            if length is not None and previous_length is not None and length <= previous_length:
                restarts += 1
            previous_length = length
        content_type = _header(interaction.response_headers, "content-type") or ""
        if interaction.streamed and "text/event-stream" not in content_type:
            content_type = "text/event-stream"  # recorders that strip headers: the body says it is SSE
        turn = parse_exchange(
            interaction.path, interaction.body, content_type=content_type, status=interaction.status
        )
        ctx = ExchangeContext(
            run_id=run_id,
            task_id=origin.task_id,
            model=model,
            repeat=origin.repeat,
            step=step,
            user_turn=0,
            role="agent",
            attempt=attempt,
            session=origin.session,
        )
        exchange = exchange_from_turn(
            ctx,
            endpoint=interaction.path,
            method=interaction.method,
            host=urlsplit(interaction.uri).hostname or "",
            status=interaction.status,
            streamed=interaction.streamed,
            latency_ms=0.0,
            request_bytes=len(interaction.request_body),
            response_bytes=len(interaction.body),
            turn=turn,
            error=None if 200 <= interaction.status < 300 else f"http_{interaction.status}",
            headers={
                k: v for k in _KEPT_HEADERS if (v := _header(interaction.response_headers, k)) is not None
            },
            simulated=False,
        )
        if turn is not None and turn.error:
            exchange.error = turn.error
        row = exchange.to_dict()
        row["latency_ms"] = None  # cassettes do not record timing
        row["request_model"] = request.get("model")
        row["source"] = SOURCE
        record.exchanges.append(row)
        for call in turn.tool_calls if turn is not None else []:
            # Requested by the model; whether and how the test ran it is not in the cassette.
            record.tool_calls.append(
                tool_row(origin, SOURCE, step=step, tool=call.name, tool_call_id=call.id or None)
            )
        provider = _PRICE_PROVIDER.get(exchange.host)
        price = prices.price_for(provider, str(exchange.response_model or model)) if provider else None
        cost = prices.cost_usd(price, row) if price else None
        if cost is not None:
            total_cost = (total_cost or 0.0) + cost

    if restarts:
        notes.append(
            f"{restarts} requests start the conversation over (likely re-recordings appended "
            "to the cassette, or retries without a retry header)"
        )
    retried = sum(1 for r in record.exchanges if r["attempt"] > 1)
    # How the recorded conversation ended: its last exchange.
    last = record.exchanges[-1]
    last_ok = 200 <= last["status"] < 300 and not last["error"]
    turns = [t for t in (_user_turns(r) for r in requests) if t is not None]
    record.row.update(
        status="ok" if last_ok else "error",
        stop_reason=_stop_reason(last) if last_ok else "error",
        error=last["error"],
        user_turns=max(turns) if turns else None,
        steps=step,
        exchanges_exact=True,
        cost_usd=round(total_cost, 6) if total_cost is not None else None,
        format="vcr-" + ("json" if path.suffix.lower() == ".json" else "yaml"),
        ingest_notes=notes_text(
            notes + ([f"{retried} SDK retries (x-stainless-retry-count)"] if retried else [])
        ),
    )
    return [record]
