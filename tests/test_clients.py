"""The three clients: request building, history round trips, and one ledger row per HTTP attempt.

Provider answers come from plain handler functions behind `httpx2.MockTransport`,
below the real ledger transport and the real SDKs; no network, no simulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from harness.clients.anthropic import AnthropicClient
from harness.clients.base import BaseClient, ClientSettings, ModelSpec
from harness.clients.openai_chat import OpenAIChatClient
from harness.clients.openai_responses import OpenAIResponsesClient
from harness.conversation import (
    AssistantMessage,
    GenerateOptions,
    Message,
    ModelTurn,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    ToolSpec,
    UserMessage,
)
from harness.errors import ProviderError
from harness.ledger import MemorySink
from harness.wire import anthropic as anthropic_wire
from harness.wire import openai_chat as chat_wire
from harness.wire import openai_responses as responses_wire

WIRES = ("anthropic", "openai-chat", "openai-responses")
BUILD = {
    "anthropic": anthropic_wire.build_request,
    "openai-chat": chat_wire.build_request,
    "openai-responses": responses_wire.build_request,
}
PARSE = {
    "anthropic": anthropic_wire.parse_response,
    "openai-chat": chat_wire.parse_response,
    "openai-responses": responses_wire.parse_response,
}
CLIENTS: dict[str, type[BaseClient]] = {
    "anthropic": AnthropicClient,
    "openai-chat": OpenAIChatClient,
    "openai-responses": OpenAIResponsesClient,
}
SPECS = {
    "anthropic": ModelSpec(
        "anthropic:claude-x", "anthropic", "claude-x", "anthropic", "http://mock.test", "k"
    ),
    "openai-chat": ModelSpec("openai:gpt-x", "openai", "gpt-x", "openai-chat", "http://mock.test/v1", "k"),
    "openai-responses": ModelSpec(
        "openai-responses:gpt-x", "openai-responses", "gpt-x", "openai-responses", "http://mock.test/v1", "k"
    ),
}
PATHS = {
    "anthropic": "/v1/messages",
    "openai-chat": "/v1/chat/completions",
    "openai-responses": "/v1/responses",
}
TOOLS = [
    ToolSpec(
        "read",
        "Read a file.",
        {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    ),
    ToolSpec("ls", "List files.", {"type": "object", "properties": {}}),
]


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n")
    return "".join(out).encode()


# --------------------------------------------------------------------------- provider-shaped answers
# Each answer asks for two parallel tool calls: read(path=a.txt) and ls().

ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x-2026",
    "content": [
        {"type": "thinking", "thinking": "Look first.", "signature": "c2lnbmF0dXJl"},
        {"type": "redacted_thinking", "data": "b3BhcXVl"},
        {"type": "text", "text": "Checking."},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "read",
            "input": {"path": "a.txt"},
            "caller": {"type": "direct"},
        },
        {"type": "tool_use", "id": "toolu_2", "name": "ls", "input": {}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
        "output_tokens": 30,
    },
}


def _anthropic_stream() -> bytes:
    start = dict(
        ANTHROPIC_MESSAGE,
        content=[],
        stop_reason=None,
        usage={
            "input_tokens": 20,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 0,
            "output_tokens": 1,
        },
    )
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start", "message": start})]

    def block(index: int, content_block: dict[str, Any], *deltas: dict[str, Any]) -> None:
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": content_block},
            )
        )
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))

    block(
        0,
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "thinking_delta", "thinking": "Look "},
        {"type": "thinking_delta", "thinking": "first."},
        {"type": "signature_delta", "signature": "c2lnbmF0dXJl"},
    )
    block(1, {"type": "redacted_thinking", "data": "b3BhcXVl"})
    block(
        2,
        {"type": "text", "text": ""},
        {"type": "text_delta", "text": "Check"},
        {"type": "text_delta", "text": "ing."},
    )
    block(
        3,
        {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}},
        {"type": "input_json_delta", "partial_json": '{"path": '},
        {"type": "input_json_delta", "partial_json": '"a.txt"}'},
    )
    block(
        4,
        {"type": "tool_use", "id": "toolu_2", "name": "ls", "input": {}},
        {"type": "input_json_delta", "partial_json": ""},
    )
    events.append(("ping", {"type": "ping"}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 30},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return _sse(events)


CHAT_CALLS = [
    {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": '{"path": "a.txt"}'}},
    {"id": "call_2", "type": "function", "function": {"name": "ls", "arguments": "{}"}},
]
CHAT_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-x-2026",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None, "refusal": None, "tool_calls": CHAT_CALLS},
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


def _chat_stream() -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-x-2026"}
        body["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        body["usage"] = usage
        return body

    parts: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": None}))]
    for index, call in enumerate(CHAT_CALLS):
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        parts.append((None, chunk({"tool_calls": [head]})))
        arguments = call["function"]["arguments"]
        for piece in (arguments[:3], arguments[3:]):
            parts.append((None, chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})))
    parts.append((None, chunk({}, "tool_calls")))
    parts.append((None, dict(chunk({}), choices=[], usage=CHAT_COMPLETION["usage"])))
    parts.append((None, "[DONE]"))
    return _sse(parts)


RESPONSES_OUTPUT = [
    {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Plan."}],
        "encrypted_content": "ZW5j",
    },
    {"id": "rs_2", "type": "reasoning", "summary": [{"type": "summary_text", "text": "More."}]},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
    },
    {"id": "ws_1", "type": "web_search_call", "status": "completed"},
    {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "read",
        "arguments": '{"path": "a.txt"}',
        "status": "completed",
    },
    {
        "id": "fc_2",
        "type": "function_call",
        "call_id": "call_2",
        "name": "ls",
        "arguments": "{}",
        "status": "completed",
    },
]
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "model": "gpt-x-2026",
    "output": RESPONSES_OUTPUT,
    "incomplete_details": None,
    "error": None,
    "usage": {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 100},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 150,
    },
}


def _responses_stream() -> bytes:
    events: list[tuple[str | None, Any]] = [
        (
            "response.created",
            {
                "type": "response.created",
                "response": dict(RESPONSE, status="in_progress", output=[], usage=None),
            },
        )
    ]
    for index, item in enumerate(RESPONSES_OUTPUT):
        events.append(
            (
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": index, "item": item},
            )
        )
        events.append(
            (
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": index, "item": item},
            )
        )
    events.append(("response.completed", {"type": "response.completed", "response": RESPONSE}))
    return _sse(events)


ANSWERS: dict[tuple[str, bool], Callable[[], bytes]] = {
    ("anthropic", False): lambda: json.dumps(ANTHROPIC_MESSAGE).encode(),
    ("anthropic", True): _anthropic_stream,
    ("openai-chat", False): lambda: json.dumps(CHAT_COMPLETION).encode(),
    ("openai-chat", True): _chat_stream,
    ("openai-responses", False): lambda: json.dumps(RESPONSE).encode(),
    ("openai-responses", True): _responses_stream,
}
# input_tokens normalised: Anthropic adds its cache reads to its own input count.
EXPECTED_INPUT = {"anthropic": 120, "openai-chat": 120, "openai-responses": 120}


def _answer_turn(wire: str, streamed: bool = False) -> ModelTurn:
    return PARSE[wire](ANSWERS[(wire, streamed)](), streamed=streamed)


def _history(wire: str, streamed: bool = False) -> list[Message]:
    turn = _answer_turn(wire, streamed)
    first, second = turn.tool_calls
    results = (
        ToolResult(first.id, first.name, "hello"),
        ToolResult(second.id, second.name, "ls: permission denied", is_error=True),
    )
    return [
        UserMessage("read a.txt"),
        AssistantMessage(turn),
        ToolResultsMessage(results),
        UserMessage("thanks"),
    ]


def _body(
    wire: str, spec: ModelSpec | str, messages: list[Message], options: GenerateOptions | None = None
) -> bytes:
    request = BUILD[wire](spec, "You are terse.", messages, TOOLS, options or GenerateOptions())
    return json.dumps(request).encode()


# --------------------------------------------------------------------------- request building


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
def test_build_request_is_deterministic(wire: str, stream: bool) -> None:
    options = GenerateOptions(max_tokens=512, stream=stream, temperature=0.0)
    # Two histories built independently from the same provider bytes.
    first = _body(wire, SPECS[wire], _history(wire), options)
    second = _body(
        wire, SPECS[wire], _history(wire), GenerateOptions(max_tokens=512, stream=stream, temperature=0.0)
    )
    assert first == second
    assert json.loads(first)["stream"] is stream


@pytest.mark.parametrize("wire", WIRES)
def test_streamed_and_json_answers_give_the_same_history_bytes(wire: str) -> None:
    assert _body(wire, SPECS[wire], _history(wire, streamed=True)) == _body(
        wire, SPECS[wire], _history(wire, streamed=False)
    )


def test_anthropic_round_trip() -> None:
    request = anthropic_wire.build_request(
        SPECS["anthropic"], "You are terse.", _history("anthropic"), TOOLS, GenerateOptions()
    )
    assert request["system"] == "You are terse."
    assert request["tools"][0] == {
        "name": "read",
        "description": "Read a file.",
        "input_schema": TOOLS[0].parameters,
    }
    user, assistant, results = request["messages"]
    assert user == {"role": "user", "content": "read a.txt"}
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Look first.", "signature": "c2lnbmF0dXJl"},
            {"type": "redacted_thinking", "data": "b3BhcXVl"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.txt"}},
            {"type": "tool_use", "id": "toolu_2", "name": "ls", "input": {}},
        ],
    }
    # Tool results and the next user text form one user turn, results first.
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "hello"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "content": "ls: permission denied",
                "is_error": True,
            },
            {"type": "text", "text": "thanks"},
        ],
    }
    assert "temperature" not in request and "thinking" not in request


def test_anthropic_fallback_without_provider_content() -> None:
    turn = ModelTurn(text="Hi.", tool_calls=[ToolCall("t1", "ls", {"all": True})])
    request = anthropic_wire.build_request(
        "claude-x", "", [UserMessage("go"), AssistantMessage(turn)], [], GenerateOptions()
    )
    assert "system" not in request and "tools" not in request
    assert request["messages"][1]["content"] == [
        {"type": "text", "text": "Hi."},
        {"type": "tool_use", "id": "t1", "name": "ls", "input": {"all": True}},
    ]


@pytest.mark.parametrize(
    ("max_tokens", "budget", "sent_max"),
    [(1024, 2048, 3072), (1024, 1024, 2048), (8192, 2048, 8192)],
)
def test_anthropic_thinking_budget(max_tokens: int, budget: int, sent_max: int) -> None:
    options = GenerateOptions(max_tokens=max_tokens, thinking_budget=budget, temperature=1.0)
    request = anthropic_wire.build_request("claude-x", "", [UserMessage("hi")], [], options)
    assert request["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert request["max_tokens"] == sent_max and request["max_tokens"] > budget
    assert request["temperature"] == 1.0


def test_chat_round_trip() -> None:
    request = chat_wire.build_request(
        SPECS["openai-chat"], "You are terse.", _history("openai-chat"), TOOLS, GenerateOptions()
    )
    system, user, assistant, result_1, result_2, last = request["messages"]
    assert system == {"role": "system", "content": "You are terse."}
    assert user == {"role": "user", "content": "read a.txt"}
    assert assistant == {"role": "assistant", "content": None, "tool_calls": CHAT_CALLS}
    assert result_1 == {"role": "tool", "tool_call_id": "call_1", "content": "hello"}
    assert result_2 == {"role": "tool", "tool_call_id": "call_2", "content": "ls: permission denied"}
    assert last == {"role": "user", "content": "thanks"}
    assert request["tools"][1] == {
        "type": "function",
        "function": {
            "name": "ls",
            "description": "List files.",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    assert request["max_completion_tokens"] == 1024 and "max_tokens" not in request
    assert "stream_options" not in request and "reasoning_effort" not in request


def test_chat_keeps_reasoning_content_and_odd_argument_strings() -> None:
    body = dict(CHAT_COMPLETION)
    odd_args = '{"path":  "a.txt" }'
    body["choices"] = [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "",
                "reasoning_content": "I should read it.",
                "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "read", "arguments": odd_args}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ]
    turn = chat_wire.parse_response(json.dumps(body).encode(), streamed=False)
    spec = ModelSpec("deepseek:r", "deepseek", "r", "openai-chat")
    request = chat_wire.build_request(
        spec,
        "",
        [UserMessage("go"), AssistantMessage(turn)],
        [],
        GenerateOptions(reasoning_effort="high", stream=True),
    )
    assistant = request["messages"][1]
    assert assistant["reasoning_content"] == "I should read it."
    assert assistant["tool_calls"][0]["function"]["arguments"] == odd_args  # byte-exact
    assert assistant["content"] is None
    assert request["max_tokens"] == 1024 and "max_completion_tokens" not in request
    assert request["reasoning_effort"] == "high"
    assert request["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("empty_content", "expected"), [(True, ""), (False, None)])
def test_chat_compat_empty_content_rule(empty_content: bool, expected: str | None) -> None:
    spec = ModelSpec(
        "compat:m@http://127.0.0.1:8080/v1",
        "compat",
        "m",
        "openai-chat",
        "http://127.0.0.1:8080/v1",
        empty_content_for_tool_calls=empty_content,
    )
    for turn in (_answer_turn("openai-chat"), ModelTurn(tool_calls=[ToolCall("c1", "ls", {})])):
        request = chat_wire.build_request(
            spec, "", [UserMessage("go"), AssistantMessage(turn)], TOOLS, GenerateOptions()
        )
        assert request["messages"][1]["content"] == expected
        assert request["max_tokens"] == 1024
    # Without tool calls an assistant message always carries a string.
    plain = chat_wire.build_request(
        spec, "", [UserMessage("go"), AssistantMessage(ModelTurn())], [], GenerateOptions()
    )
    assert plain["messages"][1] == {"role": "assistant", "content": ""}


def test_responses_round_trip() -> None:
    request = responses_wire.build_request(
        SPECS["openai-responses"], "You are terse.", _history("openai-responses"), TOOLS, GenerateOptions()
    )
    assert request["instructions"] == "You are terse."
    assert request["store"] is False
    assert request["input"] == [
        {"role": "user", "content": "read a.txt"},
        # rs_2 has no encrypted_content: a stateless request cannot refer to it.
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Plan."}],
            "encrypted_content": "ZW5j",
        },
        {"role": "assistant", "content": "Checking."},
        {"type": "function_call", "call_id": "call_1", "name": "read", "arguments": '{"path": "a.txt"}'},
        {"type": "function_call", "call_id": "call_2", "name": "ls", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "hello"},
        {"type": "function_call_output", "call_id": "call_2", "output": "ls: permission denied"},
        {"role": "user", "content": "thanks"},
    ]
    assert request["tools"][0] == {
        "type": "function",
        "name": "read",
        "description": "Read a file.",
        "parameters": TOOLS[0].parameters,
        "strict": False,
    }
    assert request["max_output_tokens"] == 1024
    assert "reasoning" not in request and "include" not in request
    effort = responses_wire.build_request(
        "gpt-x", "", [UserMessage("hi")], [], GenerateOptions(reasoning_effort="low")
    )
    assert effort["reasoning"] == {"effort": "low", "summary": "auto"}
    assert effort["include"] == ["reasoning.encrypted_content"]


def test_parsed_answers_count_client_tools_only() -> None:
    for wire in WIRES:
        for streamed in (False, True):
            turn = _answer_turn(wire, streamed)
            assert [c.name for c in turn.tool_calls] == ["read", "ls"], (wire, streamed)
            assert turn.tool_calls[0].arguments == {"path": "a.txt"}
            assert turn.error is None
            assert turn.usage is not None and turn.usage.input_tokens == EXPECTED_INPUT[wire]
    assert _answer_turn("anthropic", True).reasoning == "Look first."
    assert _answer_turn("openai-responses", True).reasoning == "Plan.More."


# --------------------------------------------------------------------------- end to end over the SDKs


class Provider:
    """A scripted provider: a plain handler function that records what it received."""

    def __init__(self, script: list[httpx2.Response | Callable[[], httpx2.Response]]) -> None:
        self.script = script
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        return step() if callable(step) else step


def _ok(wire: str, streamed: bool) -> httpx2.Response:
    content_type = "text/event-stream" if streamed else "application/json"
    return httpx2.Response(200, headers={"content-type": content_type}, content=ANSWERS[(wire, streamed)]())


def _error(status: int, kind: str, **headers: str) -> httpx2.Response:
    return httpx2.Response(
        status, headers=headers, json={"type": "error", "error": {"type": kind, "message": "no"}}
    )


def _client(wire: str, provider: Provider, sink: MemorySink, scale: float = 0.0) -> BaseClient:
    settings = ClientSettings(
        sink=sink, retry_wait_scale=scale, inner_transport=lambda: httpx2.MockTransport(provider)
    )
    return CLIENTS[wire](SPECS[wire], settings)


async def _generate(client: BaseClient, stream: bool) -> ModelTurn:
    try:
        return await client.generate(
            "You are terse.", [UserMessage("read a.txt")], TOOLS, GenerateOptions(stream=stream)
        )
    finally:
        await client.aclose()


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
async def test_one_ledger_row_per_exchange(wire: str, stream: bool) -> None:
    provider, sink = Provider([lambda: _ok(wire, stream)]), MemorySink()
    turn = await _generate(_client(wire, provider, sink), stream)

    assert [c.name for c in turn.tool_calls] == ["read", "ls"]
    (request,) = provider.requests
    assert request.url.path == PATHS[wire]
    expected = BUILD[wire](
        SPECS[wire], "You are terse.", [UserMessage("read a.txt")], TOOLS, GenerateOptions(stream=stream)
    )
    assert json.loads(request.content) == expected  # the SDK sends exactly what build_request made
    # ...with its own headers and auth, as its `create` would.
    assert request.headers["content-type"] == "application/json"
    assert "k" in (
        request.headers.get("x-api-key"),
        request.headers.get("authorization", "").removeprefix("Bearer "),
    )
    assert ("anthropic-version" in request.headers) == (wire == "anthropic")
    (row,) = sink.exchanges
    assert (row.attempt, row.status, row.streamed, row.endpoint) == (1, 200, stream, PATHS[wire])
    assert (row.tool_calls, row.tool_names, row.error) == (2, ["read", "ls"], None)
    assert row.input_tokens == EXPECTED_INPUT[wire] and row.output_tokens == 30
    assert row.response_bytes == len(ANSWERS[(wire, stream)]())


@pytest.mark.parametrize("wire", WIRES)
async def test_request_bytes_repeat_across_clients(wire: str) -> None:
    bodies = []
    for _ in range(2):
        provider = Provider([lambda: _ok(wire, False)])
        client = _client(wire, provider, MemorySink())
        try:
            await client.generate("You are terse.", _history(wire), TOOLS, GenerateOptions(temperature=0.2))
        finally:
            await client.aclose()
        bodies.append(provider.requests[0].content)
    assert bodies[0] == bodies[1]


@pytest.mark.parametrize("wire", WIRES)
async def test_429_then_200_is_two_attempts_honouring_retry_after(wire: str) -> None:
    provider = Provider([_error(429, "rate_limit_error", **{"retry-after": "7"}), lambda: _ok(wire, False)])
    sink = MemorySink()
    # A tiny scale keeps the test fast while still showing which wait was chosen.
    client = _client(wire, provider, sink, scale=0.001)
    waits: list[float] = []
    chosen = client._wait

    def spy(retry_state: Any) -> float:
        waits.append(chosen(retry_state))
        return waits[-1]

    client._wait = spy  # type: ignore[method-assign]
    turn = await _generate(client, stream=False)

    assert turn.error is None and len(turn.tool_calls) == 2
    assert [(r.attempt, r.status) for r in sink.exchanges] == [(1, 429), (2, 200)]
    assert sink.exchanges[0].error == "rate_limit_error: no"
    assert sink.exchanges[0].headers["retry-after"] == "7"
    assert waits == [pytest.approx(7 * 0.001)]  # retry-after, not the 0.5 s backoff
    assert [r.headers["x-stainless-retry-count"] for r in provider.requests] == ["0", "1"]


async def test_retry_wait_scale_zero_does_not_wait() -> None:
    provider = Provider(
        [_error(429, "rate_limit_error", **{"retry-after": "30"}), lambda: _ok("anthropic", True)]
    )
    sink = MemorySink()
    client = _client("anthropic", provider, sink, scale=0.0)
    waits: list[float] = []
    chosen = client._wait
    client._wait = lambda state: waits.append(chosen(state)) or waits[-1]  # type: ignore[method-assign]
    await _generate(client, stream=True)
    assert waits == [0.0] and [r.attempt for r in sink.exchanges] == [1, 2]


async def test_in_stream_error_is_counted_and_retried() -> None:
    overloaded = _sse(
        [("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})]
    )
    provider = Provider(
        [
            httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=overloaded),
            lambda: _ok("anthropic", True),
        ]
    )
    sink = MemorySink()
    turn = await _generate(_client("anthropic", provider, sink), stream=True)
    assert len(turn.tool_calls) == 2
    assert [(r.attempt, r.status, r.error) for r in sink.exchanges] == [
        (1, 200, "overloaded_error: Overloaded"),
        (2, 200, None),
    ]


@pytest.mark.parametrize("wire", WIRES)
async def test_non_retryable_error_is_one_row(wire: str) -> None:
    provider, sink = Provider([_error(400, "invalid_request_error")]), MemorySink()
    with pytest.raises(ProviderError) as info:
        await _generate(_client(wire, provider, sink), stream=False)
    assert info.value.status == 400 and not info.value.retryable
    (row,) = sink.exchanges
    assert (row.attempt, row.status, row.error, row.tool_calls) == (1, 400, "invalid_request_error: no", 0)
    assert row.input_tokens is None  # nothing reported: None, never 0


def test_compat_servers_get_an_explicit_tool_choice() -> None:
    # llama-cpp-python's server ignores `tools` unless `tool_choice` is present.
    compat = ModelSpec(
        "compat:m@http://127.0.0.1:8080/v1", "compat", "m", "openai-chat", "http://127.0.0.1:8080/v1"
    )
    openai_spec = ModelSpec("openai:gpt-4o", "openai", "gpt-4o", "openai-chat")
    messages = [UserMessage("go")]
    assert chat_wire.build_request(compat, "", messages, TOOLS, GenerateOptions())["tool_choice"] == "auto"
    assert "tool_choice" not in chat_wire.build_request(compat, "", messages, [], GenerateOptions())
    assert "tool_choice" not in chat_wire.build_request(openai_spec, "", messages, TOOLS, GenerateOptions())


async def test_the_sdk_does_not_reprocess_the_conversation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The openai SDK's typed transform sees the same small stand-in whatever the history's length.

    Run through its typed request params, a conversation cost more CPU per attempt the longer it
    grew; the body now travels ready-built in `extra_body`.
    """
    import openai._utils._transform as transform

    calls = 0
    original = transform._async_transform_recursive

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(transform, "_async_transform_recursive", counting)
    per_length, sent = {}, {}
    for turns in (1, 20):
        provider, sink = Provider([lambda: _ok("openai-chat", False)]), MemorySink()
        client = _client("openai-chat", provider, sink)
        calls = 0
        try:
            await client.generate("You are terse.", _history("openai-chat") * turns, TOOLS, GenerateOptions())
        finally:
            await client.aclose()
        per_length[turns] = calls
        sent[turns] = len(json.loads(provider.requests[0].content)["messages"])
    assert sent[20] > 10 * sent[1]  # the whole history went out...
    assert per_length[1] == per_length[20]  # ...without the SDK walking it


def test_mapping_an_error_imports_no_other_sdk() -> None:
    """An OpenAI-only run must not import anthropic at its first error, inside the event loop."""
    import subprocess
    import sys

    code = (
        "import sys, httpx2, openai\n"
        "from harness.clients.base import map_sdk_error\n"
        "request = httpx2.Request('POST', 'http://x/v1/chat/completions')\n"
        "response = httpx2.Response(429, request=request, headers={'retry-after': '2'})\n"
        "mapped = map_sdk_error(openai.RateLimitError('slow down', response=response, body=None))\n"
        "print(mapped.status, mapped.retryable, mapped.retry_after, 'anthropic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["429", "True", "2.0", "False"], out.stderr
