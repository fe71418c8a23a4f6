"""OpenAI Responses API wire format: the one parser of its responses, and its request builder.

`parse_response` reads `/responses` bodies, JSON or SSE (`response.*`
events), for the live ledger, replay, the proxy and ingest. `build_request`
shapes one stateless request (`store=False`): earlier turns are re-sent as
input items. `harness.clients.openai_responses` sends it through the `openai` SDK.
"""

from __future__ import annotations

import copy
from typing import Any

from harness.conversation import (
    AssistantMessage,
    GenerateOptions,
    Message,
    ModelTurn,
    ToolCall,
    ToolResultsMessage,
    ToolSpec,
    Usage,
    UserMessage,
)
from harness.wire._common import (
    ModelTarget,
    as_int,
    error_text,
    is_stream,
    iter_sse,
    load_json,
    parse_arguments,
    status_error,
)

# Output items the client must execute and answer. Provider-run tools
# (web_search_call, file_search_call, code_interpreter_call, mcp_call,
# image_generation_call) are not among them.
_CLIENT_CALLS = frozenset(
    {
        "function_call",
        "custom_tool_call",
        "computer_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
    }
)
_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


# --------------------------------------------------------------------------- parsing


def parse_response(body: bytes, *, streamed: bool, status: int = 200) -> ModelTurn:
    """Parse one Responses API body (decoded, not gzip) into a ModelTurn. Never raises."""
    ok = 200 <= status < 300
    if is_stream(body, streamed):
        turn = _parse_stream(body)
        if not ok and not turn.error:
            turn.error = f"http_{status}"
        return turn
    payload = load_json(body)
    if not ok:
        return ModelTurn(error=status_error(status, payload, body))
    if not isinstance(payload, dict):
        return ModelTurn(error=f"incomplete_response: body is not a JSON object ({len(body)} bytes)")
    if payload.get("object") != "response" and "output" not in payload:
        return ModelTurn(error=error_text(payload) or "error: body is no response object")
    return _turn_from_response(payload, payload.get("output") or [], error=_failure(payload))


def normalise_usage(raw: Any) -> Usage | None:
    """input_tokens already includes cached tokens, output_tokens includes reasoning."""
    if not isinstance(raw, dict):
        return None
    input_details = raw.get("input_tokens_details")
    output_details = raw.get("output_tokens_details")
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")),
        output_tokens=as_int(raw.get("output_tokens")),
        cache_read_input_tokens=as_int(input_details.get("cached_tokens"))
        if isinstance(input_details, dict)
        else None,
        cache_creation_input_tokens=None,
        reasoning_tokens=as_int(output_details.get("reasoning_tokens"))
        if isinstance(output_details, dict)
        else None,
        raw=raw,
    )


def _failure(response: dict[str, Any]) -> str | None:
    if response.get("status") != "failed" and not response.get("error"):
        return None
    return error_text(response) or "error: response failed"


def _turn_from_response(
    response: dict[str, Any], items: list[Any], *, error: str | None, finished_only: set[int] | None = None
) -> ModelTurn:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    text.append(str(part.get("text") or ""))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    text.append(str(part.get("refusal") or ""))
        elif kind == "reasoning":
            # Summaries, and raw reasoning text where a model returns it;
            # encrypted_content is opaque and no visible text.
            for part in item.get("summary") or []:
                if isinstance(part, dict):
                    reasoning.append(str(part.get("text") or ""))
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "reasoning_text":
                    reasoning.append(str(part.get("text") or ""))
        elif kind in _CLIENT_CALLS:
            if finished_only is not None and position not in finished_only:
                continue  # cut off by a broken stream: never a complete request
            calls.append(_tool_call(item))
    return ModelTurn(
        text="".join(text),
        tool_calls=calls,
        reasoning="".join(reasoning),
        usage=normalise_usage(response.get("usage")),
        stop_reason=_stop_reason(response),
        model=response.get("model"),
        error=error,
        provider_content=[i for i in items if isinstance(i, dict)],
    )


def _tool_call(item: dict[str, Any]) -> ToolCall:
    call_id = str(item.get("call_id") or item.get("id") or "")
    kind = item.get("type")
    if kind == "function_call":
        raw = item.get("arguments")
        raw = raw if isinstance(raw, str) else None
        return ToolCall(call_id, str(item.get("name") or ""), parse_arguments(raw), raw)
    if kind == "custom_tool_call":
        raw = item.get("input")
        raw = raw if isinstance(raw, str) else None
        return ToolCall(call_id, str(item.get("name") or ""), {"input": raw or ""}, raw)
    action = item.get("action")
    return ToolCall(call_id, str(item.get("name") or kind), action if isinstance(action, dict) else {})


def _stop_reason(response: dict[str, Any]) -> str | None:
    # Responses has no stop_reason: an incomplete answer names why, otherwise the status says it.
    details = response.get("incomplete_details")
    if isinstance(details, dict) and details.get("reason"):
        return str(details["reason"])
    status = response.get("status")
    return str(status) if status else None


def _parse_stream(body: bytes) -> ModelTurn:
    response: dict[str, Any] = {}
    items: dict[int, dict[str, Any]] = {}
    done_items: set[int] = set()
    terminal = False
    error: str | None = None
    for event in iter_sse(body):
        data = event.json()
        if not isinstance(data, dict):
            continue
        kind = data.get("type") or event.event
        if kind in ("response.created", "response.in_progress", *_TERMINAL_EVENTS):
            if isinstance(data.get("response"), dict):
                response = data["response"]
            if kind in _TERMINAL_EVENTS:
                terminal = True
                if kind == "response.failed":
                    error = error or _failure(response) or "error: response failed"
        elif kind == "error":
            error = error or error_text(data) or "error: unknown stream error"
        elif kind in ("response.output_item.added", "response.output_item.done"):
            index, item = data.get("output_index"), data.get("item")
            if isinstance(index, int) and isinstance(item, dict):
                items[index] = copy.deepcopy(item)
                if kind == "response.output_item.done":
                    done_items.add(index)
        else:
            _apply_delta(items, kind, data)

    if not terminal and error is None:
        error = "incomplete_stream: ended before response.completed"
    final = response.get("output") if terminal else None
    if isinstance(final, list) and final:
        # The terminal event repeats every output item in full: the authoritative copy.
        return _turn_from_response(response, final, error=error)
    ordered = [items[i] for i in sorted(items)]
    finished = {position for position, i in enumerate(sorted(items)) if i in done_items}
    return _turn_from_response(response, ordered, error=error, finished_only=None if terminal else finished)


def _apply_delta(items: dict[int, dict[str, Any]], kind: str, data: dict[str, Any]) -> None:
    """Grow the item a delta belongs to, so that a stream cut off mid-way still yields its text."""
    index = data.get("output_index")
    item = items.get(index) if isinstance(index, int) else None
    delta = data.get("delta")
    if item is None or not isinstance(delta, str):
        return
    if kind == "response.function_call_arguments.delta":
        item["arguments"] = str(item.get("arguments") or "") + delta
    elif kind == "response.custom_tool_call_input.delta":
        item["input"] = str(item.get("input") or "") + delta
    elif kind == "response.output_text.delta":
        _part(item, "content", data.get("content_index"), "output_text")["text"] += delta
    elif kind == "response.reasoning_summary_text.delta":
        _part(item, "summary", data.get("summary_index"), "summary_text")["text"] += delta
    elif kind == "response.reasoning_text.delta":
        _part(item, "content", data.get("content_index"), "reasoning_text")["text"] += delta


def _part(item: dict[str, Any], key: str, index: Any, kind: str) -> dict[str, Any]:
    parts = item.get(key)
    if not isinstance(parts, list):
        parts = item[key] = []
    position = index if isinstance(index, int) and index >= 0 else len(parts)
    while len(parts) <= position:
        parts.append({"type": kind, "text": ""})
    if not isinstance(parts[position], dict):
        parts[position] = {"type": kind, "text": ""}
    parts[position]["text"] = str(parts[position].get("text") or "")
    return parts[position]


# --------------------------------------------------------------------------- requests


def build_request(
    spec_or_model: ModelTarget | str,
    system: str,
    messages: list[Message],
    tools: list[ToolSpec],
    options: GenerateOptions,
) -> dict[str, Any]:
    """The keyword arguments of `responses.create`: deterministic, same inputs give the same JSON."""
    model = spec_or_model if isinstance(spec_or_model, str) else spec_or_model.model
    items: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, UserMessage):
            items.append({"role": "user", "content": message.text})
        elif isinstance(message, AssistantMessage):
            items.extend(_assistant_items(message.turn))
        elif isinstance(message, ToolResultsMessage):
            items.extend(
                {"type": "function_call_output", "call_id": r.call_id, "output": r.content}
                for r in message.results
            )
        else:  # pragma: no cover - Message is a closed union
            raise TypeError(f"unsupported message {type(message).__name__}")
    request: dict[str, Any] = {"model": model}
    if system:
        request["instructions"] = system
    request["input"] = items
    if tools:
        # strict defaults to true on this API, which rejects most hand-written schemas.
        request["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "strict": False,
            }
            for t in tools
        ]
    request["max_output_tokens"] = options.max_tokens
    if options.temperature is not None:
        request["temperature"] = options.temperature
    if options.reasoning_effort is not None:
        # Summaries are the visible reasoning of this API; encrypted reasoning lets a
        # stateless (store=False) conversation carry the model's reasoning forward.
        request["reasoning"] = {"effort": options.reasoning_effort, "summary": "auto"}
        request["include"] = ["reasoning.encrypted_content"]
    request["store"] = False
    request["stream"] = options.stream
    return request


def _assistant_items(turn: ModelTurn) -> list[dict[str, Any]]:
    if turn.provider_content is None:
        items: list[dict[str, Any]] = []
        if turn.text:
            items.append({"role": "assistant", "content": turn.text})
        items.extend(
            {"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments_json}
            for c in turn.tool_calls
        )
        return items
    out: list[dict[str, Any]] = []
    for item in turn.provider_content:
        kind = item.get("type")
        if kind == "message":
            text = "".join(
                str(p.get("text") or "")
                for p in item.get("content") or []
                if isinstance(p, dict) and p.get("type") == "output_text"
            )
            if text:
                out.append({"role": "assistant", "content": text})
        elif kind == "function_call":
            out.append(
                {
                    "type": "function_call",
                    "call_id": item.get("call_id"),
                    "name": item.get("name"),
                    "arguments": item.get("arguments") or "",
                }
            )
        elif kind == "custom_tool_call":
            out.append(
                {
                    "type": "custom_tool_call",
                    "call_id": item.get("call_id"),
                    "name": item.get("name"),
                    "input": item.get("input") or "",
                }
            )
        elif kind == "reasoning" and item.get("encrypted_content"):
            # Without store=True the server keeps nothing: only encrypted reasoning can be re-sent.
            out.append(
                {
                    "type": "reasoning",
                    "id": item.get("id"),
                    "summary": item.get("summary") or [],
                    "encrypted_content": item["encrypted_content"],
                }
            )
    return out
