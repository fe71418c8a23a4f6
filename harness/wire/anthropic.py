"""Anthropic Messages API wire format: the one parser of its responses, and its request builder.

`parse_response` reads a `/v1/messages` response body, JSON or SSE, for the
live ledger, cassette replay, the proxy and ingest alike. `build_request` is
the pure function that shapes a request, so that the same history gives the
same bytes; `harness.clients.anthropic` sends it through the official SDK.
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

# Blocks whose `input` arrives as input_json_delta fragments in a stream.
_JSON_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})


# --------------------------------------------------------------------------- parsing


def parse_response(body: bytes, *, streamed: bool, status: int = 200) -> ModelTurn:
    """Parse one Messages API response body (decoded, not gzip) into a ModelTurn. Never raises."""
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
    if payload.get("type") == "error" or (payload.get("type") != "message" and "error" in payload):
        return ModelTurn(error=error_text(payload) or "error: unknown error body")
    return _turn_from_message(payload, payload.get("content") or [])


def normalise_usage(raw: Any) -> Usage | None:
    """Anthropic's input_tokens excludes cache reads and writes: add them back."""
    if not isinstance(raw, dict):
        return None
    uncached = as_int(raw.get("input_tokens"))
    cache_read = as_int(raw.get("cache_read_input_tokens"))
    cache_write = as_int(raw.get("cache_creation_input_tokens"))
    total = None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0)
    return Usage(
        input_tokens=total,
        output_tokens=as_int(raw.get("output_tokens")),
        cache_read_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
        reasoning_tokens=None,  # Anthropic does not report thinking tokens apart
        raw=raw,
    )


def _turn_from_message(
    message: dict[str, Any],
    blocks: list[dict[str, Any]],
    *,
    raw_inputs: dict[int, str] | None = None,
    finished_tools: set[int] | None = None,
    error: str | None = None,
) -> ModelTurn:
    """Build the turn from a message and its content blocks (streams pass what they assembled)."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for position, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text") or ""))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking") or ""))
        elif kind == "tool_use":
            # A tool_use block cut off by a broken stream is no request the client could run.
            if finished_tools is not None and position not in finished_tools:
                continue
            raw = (raw_inputs or {}).get(position) or None
            arguments = block.get("input")
            calls.append(
                ToolCall(
                    id=str(block.get("id") or ""),
                    name=str(block.get("name") or ""),
                    arguments=arguments if isinstance(arguments, dict) else {},
                    raw_arguments=raw,
                )
            )
        # redacted_thinking carries no visible text; server_tool_use and its
        # *_tool_result blocks ran at the provider and are no client tool calls.
    return ModelTurn(
        text="".join(text),
        tool_calls=calls,
        reasoning="".join(reasoning),
        usage=normalise_usage(message.get("usage")),
        stop_reason=message.get("stop_reason"),
        model=message.get("model"),
        error=error,
        provider_content=[b for b in blocks if isinstance(b, dict)],
    )


def _parse_stream(body: bytes) -> ModelTurn:
    message: dict[str, Any] = {}
    usage: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    partial_json: dict[int, str] = {}
    stopped: set[int] = set()
    finished = False
    error: str | None = None

    for event in iter_sse(body):
        data = event.json()
        if not isinstance(data, dict):
            continue
        kind = data.get("type") or event.event
        if kind == "error" or event.event == "error":
            error = error or error_text(data) or "error: unknown stream error"
        elif kind == "message_start":
            message = dict(data.get("message") or {})
            start_usage = message.get("usage")
            usage = dict(start_usage) if isinstance(start_usage, dict) else None
        elif kind == "content_block_start":
            index = data.get("index")
            block = data.get("content_block")
            if isinstance(index, int) and isinstance(block, dict):
                blocks[index] = copy.deepcopy(block)
                if block.get("type") in _JSON_INPUT_BLOCKS:
                    partial_json[index] = ""
        elif kind == "content_block_delta":
            _apply_delta(blocks, partial_json, data)
        elif kind == "content_block_stop":
            index = data.get("index")
            if isinstance(index, int) and index in blocks:
                stopped.add(index)
                if partial_json.get(index):
                    blocks[index]["input"] = parse_arguments(partial_json[index])
        elif kind == "message_delta":
            delta = data.get("delta") or {}
            for key in ("stop_reason", "stop_sequence"):
                if delta.get(key) is not None:
                    message[key] = delta[key]
            # message_delta carries cumulative counts; newer API versions repeat
            # the input and cache fields too. The latest non-null value wins.
            delta_usage = data.get("usage")
            if isinstance(delta_usage, dict):
                usage = dict(usage or {})
                usage.update({k: v for k, v in delta_usage.items() if v is not None})
        elif kind == "message_stop":
            finished = True

    if usage is not None:
        message["usage"] = usage
    order = sorted(blocks)
    ordered = [blocks[i] for i in order]
    position_of = {index: position for position, index in enumerate(order)}
    if not finished and error is None:
        error = "incomplete_stream: ended before message_stop"
    return _turn_from_message(
        message,
        ordered,
        raw_inputs={position_of[i]: s for i, s in partial_json.items()},
        finished_tools={position_of[i] for i in stopped},
        error=error,
    )


def _apply_delta(
    blocks: dict[int, dict[str, Any]], partial_json: dict[int, str], data: dict[str, Any]
) -> None:
    index = data.get("index")
    delta = data.get("delta")
    if not isinstance(index, int) or index not in blocks or not isinstance(delta, dict):
        return
    block = blocks[index]
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
    elif kind == "thinking_delta":
        block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking") or "")
    elif kind == "signature_delta":
        block["signature"] = str(block.get("signature") or "") + str(delta.get("signature") or "")
    elif kind == "input_json_delta":
        partial_json[index] = partial_json.get(index, "") + str(delta.get("partial_json") or "")
    elif kind == "citations_delta" and delta.get("citation") is not None:
        block["citations"] = [*(block.get("citations") or []), delta["citation"]]


# --------------------------------------------------------------------------- requests


def build_request(
    spec_or_model: ModelTarget | str,
    system: str,
    messages: list[Message],
    tools: list[ToolSpec],
    options: GenerateOptions,
) -> dict[str, Any]:
    """The keyword arguments of `messages.create`: deterministic, same inputs give the same JSON."""
    model = spec_or_model if isinstance(spec_or_model, str) else spec_or_model.model
    max_tokens = options.max_tokens
    if options.thinking_budget is not None and max_tokens <= options.thinking_budget:
        # The budget is part of max_tokens; keep the caller's max_tokens for the answer itself.
        max_tokens = options.thinking_budget + options.max_tokens
    request: dict[str, Any] = {"model": model, "max_tokens": max_tokens}
    if system:
        request["system"] = system
    request["messages"] = _wire_messages(messages)
    if tools:
        request["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
        ]
    if options.thinking_budget is not None:
        request["thinking"] = {"type": "enabled", "budget_tokens": options.thinking_budget}
    if options.temperature is not None:
        request["temperature"] = options.temperature
    request["stream"] = options.stream
    return request


def _wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for message in messages:
        if isinstance(message, UserMessage):
            role, blocks = "user", [{"type": "text", "text": message.text}]
        elif isinstance(message, AssistantMessage):
            role, blocks = "assistant", _assistant_blocks(message.turn)
        elif isinstance(message, ToolResultsMessage):
            role, blocks = (
                "user",
                [_tool_result_block(r.call_id, r.content, r.is_error) for r in message.results],
            )
        else:  # pragma: no cover - Message is a closed union
            raise TypeError(f"unsupported message {type(message).__name__}")
        if not blocks:
            # Anthropic rejects empty assistant turns; an empty turn adds nothing to resend.
            continue
        if turns and turns[-1][0] == role:
            # Tool results followed by a user message are one user turn on this wire.
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, list(blocks)))
    wire: list[dict[str, Any]] = []
    for role, blocks in turns:
        if len(blocks) == 1 and blocks[0]["type"] == "text" and "citations" not in blocks[0]:
            wire.append({"role": role, "content": blocks[0]["text"]})
        else:
            wire.append({"role": role, "content": blocks})
    return wire


def _tool_result_block(call_id: str, content: str, is_error: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id, "content": content}
    if is_error:
        block["is_error"] = True
    return block


def _assistant_blocks(turn: ModelTurn) -> list[dict[str, Any]]:
    if turn.provider_content is not None:
        return [b for b in (_resend_block(block) for block in turn.provider_content) if b is not None]
    blocks: list[dict[str, Any]] = []
    if turn.text:
        blocks.append({"type": "text", "text": turn.text})
    for call in turn.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
    return blocks


def _resend_block(block: dict[str, Any]) -> dict[str, Any] | None:
    """A response block as request input: the fields the API takes back, signatures included."""
    kind = block.get("type")
    if kind == "text":
        if not block.get("text"):
            return None  # the API rejects empty text blocks in requests
        out: dict[str, Any] = {"type": "text", "text": block["text"]}
        if block.get("citations"):
            out["citations"] = block["citations"]
        return out
    if kind == "thinking":
        return {
            "type": "thinking",
            "thinking": block.get("thinking") or "",
            "signature": block.get("signature") or "",
        }
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data") or ""}
    if kind == "tool_use":
        arguments = block.get("input")
        return {
            "type": "tool_use",
            "id": block.get("id"),
            "name": block.get("name"),
            "input": arguments if isinstance(arguments, dict) else {},
        }
    # Server tool blocks and anything newer go back as the provider sent them.
    return block
