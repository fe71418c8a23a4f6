"""The three response parsers against real recorded provider traffic, and `harness.recorded`.

The recordings live outside the repository, in `shared/fixtures/provider-cassettes/`
beside the clone (see its SOURCES.md). Every interaction on a supported
endpoint is parsed and held against two independent references:

- a deliberately naive walk over the same body written here (count blocks,
  items and tool-call indexes, read usage fields straight from the JSON or
  the SSE `data:` lines), which shares no code with the parsers;
- a hand-written table of facts copied from SOURCES.md.

Synthetic bodies cover what the recordings lack: cache tokens on Anthropic,
truncated streams, in-stream errors of each format.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.recorded import RecordedInteraction, read_cassette
from harness.wire import anthropic as anthropic_wire
from harness.wire import openai_chat as chat_wire
from harness.wire import openai_responses as responses_wire
from harness.wire import parse_exchange, wire_for_path

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
CASSETTES = FIXTURES / "provider-cassettes"
MISSING = f"provider cassettes not found at {CASSETTES} (CI checks shared/ out beside the clone)"

PARSERS = {
    "anthropic": anthropic_wire.parse_response,
    "openai-chat": chat_wire.parse_response,
    "openai-responses": responses_wire.parse_response,
}


def _cassette_files() -> list[Path]:
    return sorted(CASSETTES.glob("*/*.yaml")) if CASSETTES.is_dir() else []


def _interactions(*, streams_only: bool = False) -> list[Any]:
    params = []
    for path in _cassette_files():
        for number, interaction in enumerate(read_cassette(path), 1):
            wire = wire_for_path(interaction.path)
            if wire is not None and (interaction.streamed or not streams_only):
                name = f"{path.parent.name}/{path.name}#{number}"
                params.append(pytest.param(wire, interaction, id=name))
    return params or [pytest.param(None, None, marks=pytest.mark.skip(reason=MISSING))]


def _load(relative: str) -> list[RecordedInteraction]:
    if not CASSETTES.is_dir():
        pytest.skip(MISSING)
    return read_cassette(CASSETTES / relative)


# --------------------------------------------------------------------------- naive reference walk


@dataclass
class Truth:
    tool_names: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read: int | None = None
    reasoning_tokens: int | None = None
    reasoning_chars: int = 0
    error_type: str | None = None


def _data_lines(body: bytes) -> list[dict[str, Any]]:
    """Every JSON `data:` line of an SSE body; the recorded streams keep one JSON per line."""
    out = []
    for line in body.decode("utf-8").splitlines():
        if line.startswith("data:"):
            payload = line[len("data:") :].strip()
            if payload and payload != "[DONE]":
                out.append(json.loads(payload))
    return out


def _anthropic_truth(body: bytes, streamed: bool, status: int) -> Truth:
    if status >= 400:
        return Truth(error_type=json.loads(body)["error"]["type"])
    truth = Truth()
    usage: dict[str, Any] = {}
    if streamed:
        for event in _data_lines(body):
            if event["type"] == "message_start":
                usage.update(event["message"]["usage"])
            elif event["type"] == "message_delta":
                usage.update({k: v for k, v in event["usage"].items() if v is not None})
            elif event["type"] == "content_block_start" and event["content_block"]["type"] == "tool_use":
                truth.tool_names.append(event["content_block"]["name"])
            elif event["type"] == "content_block_delta" and event["delta"]["type"] == "thinking_delta":
                truth.reasoning_chars += len(event["delta"]["thinking"])
            elif event["type"] == "error":
                truth.error_type = event["error"]["type"]
    else:
        message = json.loads(body)
        usage = message["usage"]
        truth.tool_names = [b["name"] for b in message["content"] if b["type"] == "tool_use"]
        truth.reasoning_chars = sum(len(b["thinking"]) for b in message["content"] if b["type"] == "thinking")
    cache_read = usage.get("cache_read_input_tokens")
    cache_write = usage.get("cache_creation_input_tokens")
    truth.input_tokens = usage["input_tokens"] + (cache_read or 0) + (cache_write or 0)
    truth.output_tokens = usage["output_tokens"]
    truth.cache_read = cache_read
    return truth


def _chat_truth(body: bytes, streamed: bool, status: int) -> Truth:
    if status >= 400:
        return Truth(error_type=json.loads(body)["error"]["type"])
    truth = Truth()
    usage = None
    if streamed:
        names: dict[int, str] = {}
        for chunk in _data_lines(body):
            if "error" in chunk:
                truth.error_type = chunk["error"]["type"]
                continue
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                delta = choice["delta"]
                for call in delta.get("tool_calls") or []:
                    names.setdefault(call["index"], call.get("function", {}).get("name"))
                truth.reasoning_chars += len(delta.get("reasoning_content") or delta.get("reasoning") or "")
                if isinstance(delta.get("content"), list):  # Mistral thinking parts
                    for part in delta["content"]:
                        for piece in part.get("thinking", []):
                            truth.reasoning_chars += len(piece["text"])
        truth.tool_names = [names[i] for i in sorted(names)]
    else:
        response = json.loads(body)
        message = response["choices"][0]["message"]
        usage = response["usage"]
        truth.tool_names = [c["function"]["name"] for c in message.get("tool_calls") or []]
        truth.reasoning_chars = len(message.get("reasoning_content") or message.get("reasoning") or "")
    if usage is not None:
        truth.input_tokens = usage["prompt_tokens"]
        truth.output_tokens = usage["completion_tokens"]
        truth.cache_read = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        truth.reasoning_tokens = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    return truth


def _responses_truth(body: bytes, streamed: bool, status: int) -> Truth:
    if status >= 400:
        return Truth(error_type=json.loads(body)["error"]["type"])
    if streamed:
        events = _data_lines(body)
        items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
        usage = next(e["response"]["usage"] for e in events if e["type"] == "response.completed")
    else:
        response = json.loads(body)
        items, usage = response["output"], response["usage"]
    truth = Truth()
    truth.tool_names = [i["name"] for i in items if i["type"] == "function_call"]
    truth.reasoning_chars = sum(
        len(part["text"]) for i in items if i["type"] == "reasoning" for part in i.get("summary") or []
    )
    truth.input_tokens = usage["input_tokens"]
    truth.output_tokens = usage["output_tokens"]
    truth.cache_read = usage["input_tokens_details"]["cached_tokens"]
    truth.reasoning_tokens = usage["output_tokens_details"]["reasoning_tokens"]
    return truth


TRUTH = {"anthropic": _anthropic_truth, "openai-chat": _chat_truth, "openai-responses": _responses_truth}


@pytest.mark.parametrize(("wire", "interaction"), _interactions())
def test_parser_matches_naive_walk(wire: str, interaction: RecordedInteraction) -> None:
    truth = TRUTH[wire](interaction.body, interaction.streamed, interaction.status)
    turn = PARSERS[wire](interaction.body, streamed=interaction.streamed, status=interaction.status)

    assert [c.name for c in turn.tool_calls] == truth.tool_names
    assert len(turn.reasoning) == truth.reasoning_chars
    if truth.error_type is not None:
        assert turn.error is not None and turn.error.startswith(f"{truth.error_type}: ")
        return
    assert turn.error is None
    assert turn.usage is not None
    assert turn.usage.input_tokens == truth.input_tokens
    assert turn.usage.output_tokens == truth.output_tokens
    assert turn.usage.cache_read_input_tokens == truth.cache_read
    assert turn.usage.reasoning_tokens == truth.reasoning_tokens
    assert isinstance(turn.usage.raw, dict)
    assert turn.model
    assert turn.provider_content is not None
    for call in turn.tool_calls:
        assert call.id, "every tool call needs an id to pair it with its result"


@pytest.mark.parametrize(("wire", "interaction"), _interactions())
def test_ledger_dispatch_agrees_with_parser(wire: str, interaction: RecordedInteraction) -> None:
    """The ledger's entry point (path + content type) reaches the same parser with the same result."""
    content_type = interaction.header("content-type") or ""
    via_ledger = parse_exchange(
        interaction.path, interaction.body, content_type=content_type, status=interaction.status
    )
    direct = PARSERS[wire](interaction.body, streamed=interaction.streamed, status=interaction.status)
    assert via_ledger == direct


@pytest.mark.parametrize(("wire", "interaction"), _interactions(streams_only=True))
def test_truncated_streams_never_raise(wire: str, interaction: RecordedInteraction) -> None:
    full = PARSERS[wire](interaction.body, streamed=True)
    body = interaction.body
    for cut in (1, len(body) // 5, len(body) // 2, len(body) - 40):
        turn = PARSERS[wire](body[:cut], streamed=True)
        assert len(turn.tool_calls) <= len(full.tool_calls)
        assert len(turn.reasoning) <= len(full.reasoning)
        if cut <= len(body) // 2:
            assert turn.error, f"a stream cut at byte {cut} of {len(body)} must be flagged"


# --------------------------------------------------------------------------- facts from SOURCES.md


@dataclass(frozen=True)
class Fact:
    """One interaction as SOURCES.md describes it. `raw_in` is the provider's own input count."""

    file: str
    number: int
    status: int
    streamed: bool
    tools: int = 0
    raw_in: int | None = None
    out: int | None = None
    reasoning_tokens: int | None = None
    visible_reasoning: bool = False
    error: str | None = None


# fmt: off
# file, interaction, status, streamed, tool calls, raw input, output, reasoning_tokens, visible reasoning / error
FACTS = [
    # Anthropic: JSON, SSE, thinking, redacted thinking, parallel tool_use, gzip bodies.
    Fact("pydantic-ai/test_anthropic_tool_with_thinking.yaml", 1, 200, False, 1, 398, 155, visible_reasoning=True),
    Fact("pydantic-ai/test_anthropic_model_thinking_part_stream.yaml", 1, 200, True, 0, 43, 282, visible_reasoning=True),
    Fact("pydantic-ai/test_anthropic_model_thinking_part_redacted.yaml", 1, 200, False, 0, 92, 196),
    Fact("pydantic-ai/test_anthropic_model_thinking_part_redacted.yaml", 2, 200, False, 0, 168, 232),
    Fact("llm-anthropic/test_tools.yaml", 1, 200, True, 2, 542, 62),
    Fact("llm-anthropic/test_fixed_version_tool_chain_with_thinking_display_regression.yaml", 1, 200, True, 1, 598, 92,
         visible_reasoning=True),
    Fact("openllmetry/test_anthropic_tools_legacy.yaml", 1, 200, False, 2, 514, 152),
    Fact("openllmetry/test_anthropic_thinking_legacy.yaml", 1, 200, False, 0, 52, 215, visible_reasoning=True),
    Fact("openllmetry/test_anthropic_thinking_streaming_legacy.yaml", 1, 200, True, 0, 52, 216, visible_reasoning=True),
    Fact("openinference/test_anthropic_instrumentation_multiple_tool_calling.yaml", 1, 200, False, 2, 721, 112),
    Fact("mirascope/test_call_with_tools__anthropic_claude_sonnet_4_0__stream.yaml", 1, 200, True, 2, 416, 109),
    # Chat: JSON and SSE parallel tool_calls, reasoning_tokens.
    Fact("openllmetry/test_open_ai_function_calls_tools_parallel.yaml", 1, 200, False, 2, 70, 46),
    Fact("opentelemetry-python-contrib/test_chat_completion_multiple_tools_streaming_with_content.yaml", 1, 200, True,
         2, 75, 51, 0),
    Fact("pydantic-ai/test_openai_model_without_system_prompt.yaml", 1, 200, False, 0, 11, 809, 768),
    Fact("mirascope/test_max_tokens__openai_gpt_5_mini_completions__stream.yaml", 1, 200, True, 0, 13, 50, 50),
    Fact("openllmetry/test_chat_reasoning.yaml", 3, 200, False, 0, 11, 138, 128),
    # OpenAI-compatible: reasoning_content (DeepSeek), reasoning (OpenRouter, Groq), Mistral thinking parts.
    Fact("pydantic-ai/test_deepseek_model_thinking_part.yaml", 1, 200, False, 0, 12, 789, 415, visible_reasoning=True),
    Fact("pydantic-ai/test_deepseek_deferred_capability_with_thinking.yaml", 2, 200, False, 2, 875, 79, 26,
         visible_reasoning=True),
    Fact("pydantic-ai/test_openrouter_streaming_reasoning.yaml", 1, 200, True, 0, 43, 36, 13, visible_reasoning=True),
    Fact("pydantic-ai/test_openrouter_tool_calling.yaml", 1, 200, False, 1, 134, 43),
    Fact("pydantic-ai/test_tool_use_failed_error_streaming.yaml", 2, 200, True, 1, 304, 49, 23, visible_reasoning=True),
    Fact("pydantic-ai/test_mistral_model_thinking_part_iter.yaml", 1, 200, True, 0, 10, 232, visible_reasoning=True),
    # Responses: JSON, SSE, reasoning summaries, function_call (parallel).
    Fact("pydantic-ai/test_openai_responses_streaming_usage.yaml", 1, 200, True, 1, 53, 469, 448),
    Fact("llm/test_responses_interleaved_reasoning_between_tool_calls.yaml", 4, 200, False, 5, 532, 119, 17),
    Fact("mirascope/test_call_with_thinking__openai_gpt_5_responses__sync.yaml", 1, 200, False, 0, 32, 1095, 1088,
         visible_reasoning=True),
    Fact("openllmetry/test_responses_tool_calls.yaml", 1, 200, False, 2, 58, 44, 0),
    Fact("logfire/test_responses.yaml", 1, 200, False, 2, 0, 0, 0),  # the provider really reported zeros
    # Errors: status bodies (400/401/404) and an in-stream error on a 200.
    Fact("pydantic-ai/test_anthropic_explicit_effort_xhigh_unsupported_model_errors.yaml", 1, 400, False,
         error="invalid_request_error"),
    Fact("mirascope/test_model_not_found__anthropic_claude_sonnet_4_0.yaml", 1, 404, False, error="not_found_error"),
    Fact("mirascope/test_authentication_error__openai_gpt_4o_completions.yaml", 1, 401, False,
         error="invalid_request_error"),
    Fact("opentelemetry-python-contrib/test_chat_completion_404.yaml", 1, 404, False, error="invalid_request_error"),
    Fact("pydantic-ai/test_tool_use_failed_error.yaml", 1, 400, False, error="invalid_request_error"),
    Fact("pydantic-ai/test_openai_responses_thinking_with_modified_history.yaml", 2, 400, False,
         error="invalid_request_error"),
    Fact("pydantic-ai/test_tool_use_failed_error_streaming.yaml", 1, 200, True, error="invalid_request_error"),
]
# fmt: on


@pytest.mark.parametrize("fact", FACTS, ids=lambda f: f"{f.file}#{f.number}")
def test_sources_facts(fact: Fact) -> None:
    interaction = _load(fact.file)[fact.number - 1]
    assert interaction.status == fact.status
    assert interaction.streamed == fact.streamed
    wire = wire_for_path(interaction.path)
    assert wire is not None
    turn = PARSERS[wire](interaction.body, streamed=interaction.streamed, status=interaction.status)

    if fact.error:
        assert turn.error is not None and turn.error.startswith(f"{fact.error}: ")
        assert turn.tool_calls == []
        return
    assert turn.error is None
    assert len(turn.tool_calls) == fact.tools
    assert len({c.id for c in turn.tool_calls}) == fact.tools, "parallel calls keep distinct ids"
    assert bool(turn.reasoning) == fact.visible_reasoning
    assert turn.usage is not None
    assert turn.usage.output_tokens == fact.out
    assert turn.usage.reasoning_tokens == fact.reasoning_tokens
    if wire == "anthropic":
        assert turn.usage.reasoning_tokens is None  # Anthropic does not report it: None, never 0
        raw = turn.usage.raw or {}
        cache = (raw.get("cache_read_input_tokens") or 0) + (raw.get("cache_creation_input_tokens") or 0)
        assert turn.usage.input_tokens == fact.raw_in + cache
    else:
        assert turn.usage.input_tokens == fact.raw_in


def test_anthropic_redacted_thinking_kept_for_resend_but_invisible() -> None:
    turn = _parse("pydantic-ai/test_anthropic_model_thinking_part_redacted.yaml", 1)
    assert turn.reasoning == ""
    kinds = [b["type"] for b in turn.provider_content or []]
    assert kinds == ["redacted_thinking", "text"]
    assert (turn.provider_content or [])[0]["data"].startswith("EvgFCkYIBxgCKkBm")


def test_anthropic_stream_keeps_thinking_signature_and_tool_arguments() -> None:
    turn = _parse("llm-anthropic/test_fixed_version_tool_chain_with_thinking_display_regression.yaml", 1)
    thinking = [b for b in turn.provider_content or [] if b["type"] == "thinking"]
    assert len(thinking) == 1 and thinking[0]["signature"] and thinking[0]["thinking"] == turn.reasoning
    (call,) = turn.tool_calls
    tool_block = next(b for b in turn.provider_content or [] if b["type"] == "tool_use")
    assert tool_block["id"] == call.id and tool_block["input"] == call.arguments
    assert call.raw_arguments is None or json.loads(call.raw_arguments) == call.arguments


def test_anthropic_server_tools_are_not_client_tool_calls() -> None:
    turn = _parse("llm-anthropic/test_web_search.yaml", 1)
    kinds = [b["type"] for b in turn.provider_content or []]
    assert "server_tool_use" in kinds and "web_search_tool_result" in kinds
    assert turn.tool_calls == []
    # message_delta reports the input grown by the search results; the latest value wins
    # (SOURCES.md quotes message_start's 2039).
    assert turn.usage is not None and turn.usage.input_tokens == 10423 and turn.usage.output_tokens == 341


def test_chat_parallel_stream_arguments_are_exact_strings() -> None:
    turn = _parse(
        "opentelemetry-python-contrib/test_chat_completion_multiple_tools_streaming_with_content.yaml", 1
    )
    assert [c.raw_arguments for c in turn.tool_calls] == [
        '{"location": "Seattle, WA"}',
        '{"location": "San Francisco, CA"}',
    ]
    assert [c.arguments for c in turn.tool_calls] == [
        {"location": "Seattle, WA"},
        {"location": "San Francisco, CA"},
    ]
    assert turn.stop_reason == "tool_calls"


def test_chat_cached_tokens_are_part_of_input() -> None:
    turn = _parse("pydantic-ai/test_deepseek_deferred_capability_with_thinking.yaml", 1)
    assert turn.usage is not None
    assert (turn.usage.input_tokens, turn.usage.cache_read_input_tokens) == (563, 512)
    (message,) = turn.provider_content or []
    assert message["reasoning_content"] == turn.reasoning  # DeepSeek wants it back with tool calls


def test_openrouter_reasoning_is_not_counted_twice() -> None:
    turn = _parse("pydantic-ai/test_openrouter_streaming_reasoning.yaml", 1)
    # Each delta carries `reasoning` and the same text in `reasoning_details`.
    assert turn.reasoning == "This is a simple arithmetic question. 2+2 equals 4."
    assert turn.text == "2 + 2 = 4"


def test_groq_in_stream_error_keeps_partial_reasoning() -> None:
    turn = _parse("pydantic-ai/test_tool_use_failed_error_streaming.yaml", 1)
    assert turn.error is not None
    assert turn.error.startswith("invalid_request_error: Tool call validation failed")
    assert turn.reasoning and turn.tool_calls == []


def test_responses_reasoning_summaries_and_encrypted_items() -> None:
    turn = _parse("mirascope/test_call_with_thinking__openai_gpt_5_responses__sync.yaml", 1)
    assert turn.reasoning.startswith("**Counting prime numbers")
    assert turn.text == "3"
    encrypted = _parse("llm/test_responses_round_trips_encrypted_reasoning.yaml", 1)
    assert encrypted.reasoning == ""  # encrypted_content is not visible text
    assert [i["type"] for i in encrypted.provider_content or []] == ["reasoning", "function_call"]
    (call,) = encrypted.tool_calls
    assert call.id.startswith("call_") and call.raw_arguments == '{"country":"Pundora"}'


def _parse(relative: str, number: int) -> Any:
    interaction = _load(relative)[number - 1]
    wire = wire_for_path(interaction.path)
    assert wire is not None
    return PARSERS[wire](interaction.body, streamed=interaction.streamed, status=interaction.status)


# --------------------------------------------------------------------------- recorded.py


def _sources_sections() -> dict[str, list[tuple[int, str]]]:
    """file -> [(status, json|SSE)] per interaction, read from SOURCES.md's per-interaction lines."""
    sections: dict[str, list[tuple[int, str]]] = {}
    current = None
    for line in (CASSETTES / "SOURCES.md").read_text().splitlines():
        if heading := re.match(r"### `(.+?)`", line):
            current = sections.setdefault(heading.group(1), [])
        elif current is not None and (row := re.match(r"\s+- #\d+ \w+ \S+ \[.*?\] (\d{3}) (json|SSE)", line)):
            current.append((int(row.group(1)), row.group(2)))
    return sections


def test_every_cassette_reads_as_sources_describes() -> None:
    if not CASSETTES.is_dir():
        pytest.skip(MISSING)
    sections = _sources_sections()
    files = _cassette_files()
    assert files and len(files) == len(sections)
    for path in files:
        expected = sections[f"{path.parent.name}/{path.name}"]
        interactions = read_cassette(path)
        assert [(i.status, "SSE" if i.streamed else "json") for i in interactions] == expected, path.name
        for interaction in interactions:
            assert interaction.method == "POST"
            assert interaction.path.endswith(("/messages", "/chat/completions", "/responses"))
            assert interaction.request_body.startswith(b"{")
            assert interaction.body[:2] != b"\x1f\x8b", "gzip bodies are decoded"


def test_gzip_binary_body_is_decoded() -> None:
    first = _load("llm-anthropic/test_tools.yaml")[0]
    assert first.header("Content-Encoding") == "gzip"
    assert first.body.startswith(b"event: message_start")
    assert first.streamed


def test_parsed_body_variant_is_reserialised_json() -> None:
    interaction = _load("pydantic-ai/test_anthropic_tool_with_thinking.yaml")[0]
    raw = yaml.safe_load((CASSETTES / "pydantic-ai/test_anthropic_tool_with_thinking.yaml").read_text())
    assert json.loads(interaction.body) == raw["interactions"][0]["response"]["parsed_body"]
    assert json.loads(interaction.request_body) == raw["interactions"][0]["request"]["parsed_body"]
    assert interaction.path == "/v1/messages" and interaction.uri.endswith("?beta=true")
    assert not interaction.streamed


def test_plain_string_headers_and_stripped_headers() -> None:
    otel = _load("opentelemetry-python-contrib/test_chat_completion_404.yaml")[0]
    assert otel.response_headers["Set-Cookie"] == "test_set_cookie"
    assert otel.header("content-type") == "application/json; charset=utf-8"
    stripped = _load("openinference/test_anthropic_instrumentation_multiple_tool_calling.yaml")[0]
    assert stripped.response_headers == {} and stripped.header("content-type") is None


def test_json_cassette_and_sse_sniffing(tmp_path: Path) -> None:
    sse = "event: message_stop\ndata: {}\n\n"
    cassette = {
        "version": 1,
        "interactions": [
            {
                "request": {
                    "method": "post",
                    "uri": "http://h/v1/messages",
                    "body": '{"a":1}',
                    "headers": {},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {},
                    "body": {"string": sse},
                },
            },
            {
                "request": {
                    "method": "POST",
                    "uri": "http://h/v1/chat/completions",
                    "body": None,
                    "headers": {},
                },
                "response": {
                    "status": 201,
                    "headers": {"Content-Type": "text/event-stream"},
                    "body": {"string": "{}"},
                },
            },
        ],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cassette))
    first, second = read_cassette(path)
    assert (first.method, first.request_body, first.streamed, first.body) == (
        "POST",
        b'{"a":1}',
        True,
        sse.encode(),
    )
    # JSON cassettes cannot hold binary bodies (vcrpy refuses), so no gzip here; the
    # content type alone marks a stream even when the body does not look like one.
    assert (second.status, second.request_body, second.streamed, second.body) == (201, b"", True, b"{}")


def test_yaml_gzip_body_is_decoded(tmp_path: Path) -> None:
    packed = gzip.compress(b'{"ok": true}')
    path = tmp_path / "c.yaml"
    response = {"status": {"code": 200}, "headers": {"Content-Encoding": "gzip"}, "body": {"string": packed}}
    path.write_text(
        yaml.safe_dump(
            {"interactions": [{"request": {"uri": "https://x/v1/messages"}, "response": response}]}
        )
    )
    (only,) = read_cassette(path)
    assert only.body == b'{"ok": true}' and only.request_body == b"" and only.method == ""


def test_decoded_body_with_stale_encoding_header_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "interactions": [
                    {
                        "request": {"method": "POST", "uri": "https://x/v1/responses", "body": "{}"},
                        "response": {
                            "status": {"code": 200},
                            "headers": {"content-encoding": ["gzip"]},
                            "body": {"string": '{"object": "response"}'},
                        },
                    }
                ]
            }
        )
    )
    (only,) = read_cassette(path)
    assert only.body == b'{"object": "response"}'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("interactions: [\n  - {request: {", "unreadable cassette"),
        ("- request: {uri: x}\n  response: {}\n", "pre-1.0"),
        ("version: 1\n", "no 'interactions' list"),
        (
            "interactions:\n- request: {method: POST, uri: 'http://x/v1/messages'}\n",
            "lacks a request or a response",
        ),
        ("interactions:\n- request: {method: POST}\n  response: {status: {code: 200}}\n", "no request uri"),
        (
            "interactions:\n- request: {uri: 'http://x/'}\n  response: {status: {code: OK}}\n",
            "non-numeric status",
        ),
        (
            "interactions:\n- request: {uri: 'http://x/'}\n  response: {body: {string: ''}}\n",
            "no response status",
        ),
        (
            "interactions:\n- request: {uri: 'http://x/'}\n  response:\n    status: {code: 200}\n"
            "    headers: {content-encoding: [gzip]}\n    body: {string: !!binary AAEC}\n",
            "does not decode as gzip",
        ),
    ],
)
def test_malformed_cassettes_raise_one_line_value_error(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(reason)) as info:
        read_cassette(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- synthetic bodies


def _sse(*events: tuple[str | None, Any]) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append(f"{head}data: {payload}\n\n")
    return "".join(out).encode()


def test_anthropic_cache_tokens_are_added_to_input() -> None:
    body = json.dumps(
        {
            "type": "message",
            "model": "claude-x",
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 50,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 200,
                "output_tokens": 7,
            },
        }
    ).encode()
    usage = anthropic_wire.parse_response(body, streamed=False).usage
    assert usage is not None
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        1250,
        1000,
        200,
    )
    assert usage.output_tokens == 7 and usage.reasoning_tokens is None
    assert usage.raw == json.loads(body)["usage"]


def test_anthropic_stream_usage_takes_latest_non_null_values() -> None:
    start = {
        "type": "message_start",
        "message": {
            "model": "m",
            "content": [],
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 500, "output_tokens": 1},
        },
    }
    old_style = _sse(
        ("message_start", start),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 30}},
        ),
        ("message_stop", {"type": "message_stop"}),
    )
    usage = anthropic_wire.parse_response(old_style, streamed=True).usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (
        510,
        30,
        500,
    )
    assert usage.cache_creation_input_tokens is None  # never sent: None, not 0
    new_style = _sse(
        ("message_start", start),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {
                    "input_tokens": 12,
                    "cache_read_input_tokens": None,
                    "cache_creation_input_tokens": 40,
                    "output_tokens": 31,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    )
    usage = anthropic_wire.parse_response(new_style, streamed=True).usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (12 + 500 + 40, 31)
    assert usage.raw == {
        "input_tokens": 12,
        "cache_read_input_tokens": 500,
        "output_tokens": 31,
        "cache_creation_input_tokens": 40,
    }


def test_anthropic_in_stream_error_and_truncation() -> None:
    start = {
        "type": "message_start",
        "message": {"model": "m", "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}},
    }
    overloaded = _sse(
        ("message_start", start),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    assert anthropic_wire.parse_response(overloaded, streamed=True).error == "overloaded_error: Overloaded"
    cut = _sse(
        ("message_start", start),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a": '},
            },
        ),
    )
    turn = anthropic_wire.parse_response(cut, streamed=True)
    assert (
        turn.text == "Hel"
        and turn.tool_calls == []
        and turn.error
        and turn.error.startswith("incomplete_stream")
    )


def test_chat_stream_without_done_is_finished_by_finish_reason() -> None:
    chunk = {"model": "local", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    last = {
        "model": "local",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1},
    }
    turn = chat_wire.parse_response(_sse((None, chunk), (None, last)), streamed=True)
    assert (turn.text, turn.error, turn.stop_reason) == ("hi", None, "stop")
    assert (
        turn.usage is not None
        and turn.usage.cache_read_input_tokens is None
        and turn.usage.reasoning_tokens is None
    )
    cut = chat_wire.parse_response(_sse((None, chunk)), streamed=True)
    assert cut.text == "hi" and cut.error and cut.error.startswith("incomplete_stream")


def test_chat_error_chunk_and_tool_calls_without_index() -> None:
    error_chunk = {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "error": {"code": 502, "message": "Provider returned error"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }
    turn = chat_wire.parse_response(_sse((None, error_chunk), (None, "[DONE]")), streamed=True)
    assert turn.error == "502: Provider returned error"
    calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"x":'}},
    ]
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": calls}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"function": {"arguments": "1}"}}]},
                    "finish_reason": "tool_calls",
                }
            ]
        },
    ]
    turn = chat_wire.parse_response(_sse(*((None, c) for c in chunks)), streamed=True)
    assert [(c.id, c.name, c.raw_arguments) for c in turn.tool_calls] == [
        ("a", "f", "{}"),
        ("b", "g", '{"x":1}'),
    ]


def test_responses_failed_error_event_and_incomplete() -> None:
    failed = _sse(
        (
            "response.created",
            {"type": "response.created", "response": {"model": "gpt", "output": [], "status": "in_progress"}},
        ),
        (
            "response.failed",
            {
                "type": "response.failed",
                "response": {
                    "model": "gpt",
                    "status": "failed",
                    "output": [],
                    "error": {"code": "server_error", "message": "boom"},
                },
            },
        ),
    )
    assert responses_wire.parse_response(failed, streamed=True).error == "server_error: boom"
    bare = _sse(
        ("error", {"type": "error", "code": "rate_limit_exceeded", "message": "slow down", "param": None})
    )
    assert responses_wire.parse_response(bare, streamed=True).error == "rate_limit_exceeded: slow down"
    incomplete = json.dumps(
        {
            "object": "response",
            "model": "gpt",
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "reasoning", "summary": []}],
            "usage": {"input_tokens": 5, "output_tokens": 9},
        }
    ).encode()
    turn = responses_wire.parse_response(incomplete, streamed=False)
    assert (turn.error, turn.stop_reason) == (None, "max_output_tokens")
    assert (
        turn.usage is not None
        and turn.usage.cache_read_input_tokens is None
        and turn.usage.reasoning_tokens is None
    )


def test_responses_truncated_stream_keeps_finished_items_only() -> None:
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}
    body = _sse(
        ("response.created", {"type": "response.created", "response": {"model": "gpt", "output": []}}),
        (
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {"type": "message", "content": []},
            },
        ),
        (
            "response.output_text.delta",
            {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "Hi"},
        ),
        (
            "response.output_item.added",
            {"type": "response.output_item.added", "output_index": 1, "item": call},
        ),
        (
            "response.function_call_arguments.delta",
            {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"a"'},
        ),
    )
    turn = responses_wire.parse_response(body, streamed=True)
    assert turn.text == "Hi" and turn.tool_calls == []
    assert turn.error and turn.error.startswith("incomplete_stream")


def test_non_json_error_pages_and_sniffed_streams() -> None:
    html = b"<html><body>502 Bad Gateway</body></html>"
    for parse in PARSERS.values():
        assert parse(html, streamed=False, status=502).error == "http_502: " + html.decode()
        assert parse(b"", streamed=False, status=200).error
    # OpenRouter opens streams with comment lines; headers may be lost on the way.
    body = b": OPENROUTER PROCESSING\n\n" + _sse(
        (None, {"model": "m", "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}]}),
        (None, "[DONE]"),
    )
    turn = parse_exchange("/api/v1/chat/completions", body, content_type="")
    assert turn is not None and (turn.text, turn.error) == ("x", None)
