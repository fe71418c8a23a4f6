"""OpenAI Chat Completions, as spoken by OpenAI and every OpenAI-compatible server.

`parse_response` is the one parser of `/chat/completions` bodies (JSON and
SSE) for the live ledger, replay, the proxy and ingest. It also reads what
compatible servers add: `reasoning_content` (DeepSeek, Moonshot, llama.cpp,
vLLM), `reasoning` and `reasoning_details` (OpenRouter, Groq), Mistral's
content-part lists, Groq's `x_groq.usage` and in-stream `event: error`.
`build_request` shapes a request (with the dialects of compatible servers);
`harness.clients.openai_chat` sends it through the official `openai` SDK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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

# --------------------------------------------------------------------------- parsing


def parse_response(body: bytes, *, streamed: bool, status: int = 200) -> ModelTurn:
    """Parse one Chat Completions response body (decoded, not gzip) into a ModelTurn. Never raises."""
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
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return ModelTurn(error=error_text(payload) or "error: response has no choices")
    acc = _Assembly(model=payload.get("model"), usage=_usage_object(payload))
    choice = _first_choice(choices)
    if choice is not None:
        message = choice.get("message") or {}
        acc.add_content(message.get("content"))
        acc.add_reasoning(message)
        for position, call in enumerate(message.get("tool_calls") or []):
            acc.add_tool_delta(call, position, whole=True)
        legacy = message.get("function_call")
        if isinstance(legacy, dict) and not message.get("tool_calls"):
            # The pre-tools `functions` API: one call, no id.
            acc.add_tool_delta({"id": "", "function": legacy}, 0, whole=True)
        acc.finish_reason = choice.get("finish_reason")
    # A 200 body can still carry an error next to its choices (OpenRouter).
    return acc.turn(finished=True, error=error_text(payload))


def normalise_usage(raw: Any) -> Usage | None:
    """prompt_tokens already includes cached tokens, completion_tokens includes reasoning."""
    if not isinstance(raw, dict):
        return None
    prompt_details = raw.get("prompt_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    completion_details = raw.get("completion_tokens_details")
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    cache_read = as_int(prompt_details.get("cached_tokens"))
    if cache_read is None:
        cache_read = as_int(raw.get("prompt_cache_hit_tokens"))  # DeepSeek's own name
    return Usage(
        input_tokens=as_int(raw.get("prompt_tokens")),
        output_tokens=as_int(raw.get("completion_tokens")),
        cache_read_input_tokens=cache_read,
        cache_creation_input_tokens=as_int(prompt_details.get("cache_write_tokens")),  # OpenRouter
        reasoning_tokens=as_int(completion_details.get("reasoning_tokens")),
        raw=raw,
    )


def _usage_object(chunk: dict[str, Any]) -> dict[str, Any] | None:
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        return usage
    groq = chunk.get("x_groq")
    if isinstance(groq, dict) and isinstance(groq.get("usage"), dict):
        return groq["usage"]
    return None


def _first_choice(choices: Any) -> dict[str, Any] | None:
    """Choice 0: ampbench asks for one completion (n=1); other choices are not this turn."""
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class _Assembly:
    """What a response says, gathered from one message or from many stream deltas."""

    model: str | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    # The exact `reasoning_content` string, which DeepSeek and Moonshot want back with tool calls.
    reasoning_content: str | None = None
    reasoning_details: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[int, _PendingCall] = field(default_factory=dict)

    def add_content(self, content: Any) -> None:
        if isinstance(content, str):
            self.text.append(content)
        elif isinstance(content, list):
            # Content-part lists (Mistral magistral): text parts and thinking parts.
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    self.text.append(str(part.get("text") or ""))
                elif part.get("type") == "thinking":
                    self.reasoning.append(_thinking_text(part.get("thinking")))

    def add_reasoning(self, message: dict[str, Any]) -> None:
        # Servers put the same text in several fields (OpenRouter: `reasoning` and
        # `reasoning_details`); take one field per message so nothing counts twice.
        content = message.get("reasoning_content")
        other = message.get("reasoning")
        details = message.get("reasoning_details")
        if isinstance(content, str):
            self.reasoning.append(content)
            self.reasoning_content = (self.reasoning_content or "") + content
        elif isinstance(other, str):
            self.reasoning.append(other)
        elif "reasoning_content" not in message and "reasoning" not in message and isinstance(details, list):
            self.reasoning.extend(_detail_text(d) for d in details if isinstance(d, dict))
        if isinstance(details, list):
            self._merge_details(details)

    def _merge_details(self, details: list[Any]) -> None:
        # Streamed reasoning_details are fragments keyed by their `index`: join texts, keep the rest.
        for detail in details:
            if not isinstance(detail, dict):
                continue
            index = detail.get("index")
            target = next(
                (d for d in self.reasoning_details if index is not None and d.get("index") == index),
                None,
            )
            if target is None:
                self.reasoning_details.append(dict(detail))
                continue
            for key, value in detail.items():
                if key in ("text", "summary") and isinstance(value, str):
                    target[key] = str(target.get(key) or "") + value
                elif value not in (None, ""):
                    target[key] = value

    def add_tool_delta(self, delta: Any, position: int, *, whole: bool = False) -> None:
        if not isinstance(delta, dict):
            return
        if whole:
            index = position
        elif isinstance(delta.get("index"), int):
            index = delta["index"]
        elif not self.calls or (delta.get("id") and delta["id"] not in {c.id for c in self.calls.values()}):
            # Servers that omit `index`: a new id opens a new call, anything else continues the last.
            index = max(self.calls, default=-1) + 1
        else:
            index = max(self.calls)
        call = self.calls.setdefault(index, _PendingCall())
        if delta.get("id") and not call.id:
            call.id = str(delta["id"])
        function = delta.get("function") or {}
        if function.get("name") and not call.name:
            call.name = str(function["name"])
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call.arguments += arguments
        elif isinstance(arguments, dict):
            call.arguments += json.dumps(arguments)  # some servers send an object, not a string

    def turn(self, *, finished: bool, error: str | None) -> ModelTurn:
        calls: list[ToolCall] = []
        wire_calls: list[dict[str, Any]] = []
        for index in sorted(self.calls):
            pending = self.calls[index]
            # In a stream that broke off, a call whose arguments never closed was never made.
            if not finished and not _complete_json(pending.arguments):
                continue
            call_id = pending.id or f"call_{index}"
            calls.append(
                ToolCall(call_id, pending.name, parse_arguments(pending.arguments), pending.arguments)
            )
            wire_calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": pending.name, "arguments": pending.arguments},
                }
            )
        text = "".join(self.text)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if self.reasoning_content is not None:
            message["reasoning_content"] = self.reasoning_content
        if self.reasoning_details:
            message["reasoning_details"] = self.reasoning_details
        if wire_calls:
            message["tool_calls"] = wire_calls
        return ModelTurn(
            text=text,
            tool_calls=calls,
            reasoning="".join(self.reasoning),
            usage=normalise_usage(self.usage),
            stop_reason=self.finish_reason,
            model=self.model,
            error=error,
            provider_content=[message],
        )


def _thinking_text(thinking: Any) -> str:
    if isinstance(thinking, str):
        return thinking
    if isinstance(thinking, list):
        return "".join(str(p.get("text") or "") for p in thinking if isinstance(p, dict))
    return ""


def _detail_text(detail: dict[str, Any]) -> str:
    kind = detail.get("type")
    if kind == "reasoning.text":
        return str(detail.get("text") or "")
    if kind == "reasoning.summary":
        return str(detail.get("summary") or "")
    return ""  # reasoning.encrypted is no visible text


def _complete_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def _parse_stream(body: bytes) -> ModelTurn:
    acc = _Assembly()
    done = False
    error: str | None = None
    for event in iter_sse(body):
        if event.data.strip() == "[DONE]":
            done = True
            continue
        chunk = event.json()
        if not isinstance(chunk, dict):
            continue
        found = error_text(chunk)
        if found or event.event == "error":
            error = error or found or "error: unknown stream error"
        if acc.model is None and chunk.get("model"):
            acc.model = chunk["model"]
        usage = _usage_object(chunk)
        if usage is not None:
            acc.usage = usage  # cumulative where servers repeat it: the last one wins
        choice = _first_choice(chunk.get("choices"))
        if choice is None:
            continue
        delta = choice.get("delta") or {}
        if isinstance(delta, dict):
            acc.add_content(delta.get("content"))
            acc.add_reasoning(delta)
            for position, call in enumerate(delta.get("tool_calls") or []):
                acc.add_tool_delta(call, position)
        if choice.get("finish_reason") is not None:
            acc.finish_reason = choice["finish_reason"]
    # Some servers (older llama.cpp, several proxies) end without `[DONE]`;
    # a finish_reason is as good a sign that the answer is whole.
    finished = done or acc.finish_reason is not None
    if error is None and acc.finish_reason == "error":
        error = "error: stream ended with finish_reason=error"
    if error is None and not finished:
        error = "incomplete_stream: ended before finish_reason or [DONE]"
    return acc.turn(finished=finished, error=error)


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class _OpenAIModel:
    """A bare model name as a target: it means OpenAI itself."""

    model: str
    provider: str = "openai"
    empty_content_for_tool_calls: bool = False


def _as_spec(spec_or_model: ModelTarget | str) -> ModelTarget:
    if isinstance(spec_or_model, str):
        # A bare model name means OpenAI itself.
        return _OpenAIModel(spec_or_model)
    return spec_or_model


def build_request(
    spec_or_model: ModelTarget | str,
    system: str,
    messages: list[Message],
    tools: list[ToolSpec],
    options: GenerateOptions,
) -> dict[str, Any]:
    """The keyword arguments of `chat.completions.create`: deterministic, same inputs give the same JSON."""
    spec = _as_spec(spec_or_model)
    wire: list[dict[str, Any]] = []
    if system:
        wire.append({"role": "system", "content": system})
    for message in messages:
        if isinstance(message, UserMessage):
            wire.append({"role": "user", "content": message.text})
        elif isinstance(message, AssistantMessage):
            wire.append(_assistant_message(message.turn, spec.empty_content_for_tool_calls))
        elif isinstance(message, ToolResultsMessage):
            wire.extend(
                {"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in message.results
            )
        else:  # pragma: no cover - Message is a closed union
            raise TypeError(f"unsupported message {type(message).__name__}")
    request: dict[str, Any] = {"model": spec.model, "messages": wire}
    if tools:
        request["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in tools
        ]
        if spec.provider == "compat":
            # llama.cpp's server (llama-cpp-python) ignores the tools unless tool_choice is
            # given, although "auto" is the API's default; some vLLM setups likewise.
            request["tool_choice"] = "auto"
    # OpenAI deprecated max_tokens (reasoning models reject it); compatible servers only know max_tokens.
    request["max_completion_tokens" if spec.provider == "openai" else "max_tokens"] = options.max_tokens
    if options.temperature is not None:
        request["temperature"] = options.temperature
    if options.reasoning_effort is not None:
        request["reasoning_effort"] = options.reasoning_effort
    request["stream"] = options.stream
    if options.stream:
        request["stream_options"] = {"include_usage": True}
    return request


def _assistant_message(turn: ModelTurn, empty_content_for_tool_calls: bool) -> dict[str, Any]:
    source = turn.provider_content[0] if turn.provider_content else None
    if isinstance(source, dict):
        content = source.get("content")
        if isinstance(content, list):
            content = "".join(
                str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        calls = [
            {
                "id": c.get("id"),
                "type": "function",
                "function": {
                    "name": c["function"].get("name"),
                    "arguments": c["function"].get("arguments") or "",
                },
            }
            for c in source.get("tool_calls") or []
            if isinstance(c, dict) and isinstance(c.get("function"), dict)
        ]
        reasoning_content = source.get("reasoning_content")
        details = source.get("reasoning_details")
    else:
        content = turn.text
        calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in turn.tool_calls
        ]
        reasoning_content, details = None, None
    message: dict[str, Any] = {"role": "assistant"}
    if calls:
        # llama.cpp's server answers null content beside tool calls with HTTP 500.
        message["content"] = content or ("" if empty_content_for_tool_calls else None)
    else:
        message["content"] = content or ""
    if isinstance(reasoning_content, str):
        message["reasoning_content"] = reasoning_content
    if isinstance(details, list) and details:
        message["reasoning_details"] = details
    if calls:
        message["tool_calls"] = calls
    return message
