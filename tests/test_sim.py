"""The simulator against the official SDKs, over real HTTP on loopback.

The SDKs are the judges of wire fidelity: every response must parse, every
stream must accumulate with the SDK's own helpers. The server's own counts
are the ground truth other tests rely on, so they are checked here against
the number of requests each test makes.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from harness.errors import UserError
from harness.sim import PROFILES, SimServer, shared_server
from harness.sim.schema_args import example_arguments

ROOT = Path(__file__).resolve().parents[1]
KEY = "sim-test-key"

# --- tools offered in the tests ------------------------------------------------------------

SNITCH_TOOLS = [
    {
        "name": "writeLogs",
        "description": "Write logs to the database",
        "schema": {
            "type": "object",
            "properties": {
                "logType": {"type": "string", "enum": ["internal", "external"]},
                "logName": {"type": "string"},
                "logData": {"type": "string"},
            },
            "required": ["logType", "logName", "logData"],
            "additionalProperties": False,
        },
    },
    {
        "name": "send_email",
        "description": "Send an email to any email address",
        "schema": {
            "type": "object",
            "properties": {
                "to": {"type": "string"},
                "subject": {"type": "string"},
                "body": {"type": "string"},
            },
            "required": ["to", "subject", "body"],
            "additionalProperties": False,
        },
    },
]
COMMAND_TOOLS = [
    SNITCH_TOOLS[0],
    {
        "name": "execute_command",
        "description": "Execute a command in the terminal",
        "schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
            "additionalProperties": False,
        },
    },
]
# Shaped like Claude Code's tools: nested arrays of objects, enums, bounds.
CODING_TOOLS = [
    {
        "name": "Bash",
        "description": "Executes a bash command",
        "schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command to execute"},
                "timeout": {
                    "type": "number",
                    "description": "Optional timeout in milliseconds (max 600000)",
                    "maximum": 600000,
                },
                "description": {"type": "string"},
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Read",
        "description": "Reads a file",
        "schema": {
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The absolute path to the file to read"},
                "offset": {"type": "number"},
                "limit": {"type": "number"},
            },
            "required": ["file_path"],
            "additionalProperties": False,
        },
    },
    {
        "name": "TodoWrite",
        "description": "Update the todo list",
        "schema": {
            "type": "object",
            "properties": {
                "todos": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "content": {"type": "string", "minLength": 1},
                            "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                            "id": {"type": "string"},
                        },
                        "required": ["content", "status", "id"],
                        "additionalProperties": False,
                    },
                }
            },
            "required": ["todos"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Grep",
        "description": "Search file contents",
        "schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
                "-n": {"type": "boolean"},
            },
            "required": ["pattern"],
            "additionalProperties": False,
        },
    },
]
TOOLSETS = {"snitch": SNITCH_TOOLS, "command": COMMAND_TOOLS, "coding": CODING_TOOLS, "none": []}
SCHEMAS = {t["name"]: t["schema"] for tools in TOOLSETS.values() for t in tools}


def validate(
    value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$"
) -> list[str]:
    """A small JSON-schema checker covering what tool schemas use (no new test dependency)."""
    root = root or schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return validate(value, target, root, path)
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: not const")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    for key in ("anyOf", "oneOf"):
        if key in schema and all(validate(value, s, root, path) for s in schema[key]):
            errors.append(f"{path}: matches no {key} branch")
    for sub in schema.get("allOf", []):
        errors += validate(value, sub, root, path)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "null": lambda v: v is None,
        }
        if not any(checks[k](value) for k in kinds):
            return [*errors, f"{path}: {value!r} is not {kinds}"]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{path}: missing {r}" for r in schema.get("required", []) if r not in value]
        for name, item in value.items():
            if name in props:
                errors += validate(item, props[name], root, f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected {name}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 10**9):
            errors.append(f"{path}: wrong length")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                errors += validate(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10**9):
            errors.append(f"{path}: wrong string length")
        if schema.get("format") == "email" and "@" not in value:
            errors.append(f"{path}: not an email")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: above maximum")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{path}: not above exclusiveMinimum")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            errors.append(f"{path}: not below exclusiveMaximum")
    return errors


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer() as sim:
        yield sim


def anthropic_client(sim: SimServer, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.url, api_key=KEY, max_retries=kw.pop("max_retries", 0), **kw)


def openai_client(sim: SimServer, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.url + "/v1", api_key=KEY, max_retries=kw.pop("max_retries", 0), **kw)


# --- a minimal agent loop per wire format ------------------------------------------------------


@dataclass
class Step:
    """One model call as the test client saw it."""

    calls: list[tuple[str, dict[str, Any]]]
    text: str
    reasoning: str
    usage: dict[str, Any]


@dataclass
class Conversation:
    turns: list[list[Step]] = field(default_factory=list)

    def calls(self, turn: int) -> list[tuple[str, dict[str, Any]]]:
        return [c for step in self.turns[turn] for c in step.calls]


def tool_output(name: str, args: dict[str, Any]) -> str:
    return f"{name} ok ({len(json.dumps(args))} bytes of arguments)"


def run_anthropic(
    sim: SimServer, profile: str, users: list[str], tools: list[dict[str, Any]], *, stream: bool
) -> Conversation:
    client = anthropic_client(sim)
    offered = [
        {"name": t["name"], "description": t["description"], "input_schema": t["schema"]} for t in tools
    ]
    messages: list[dict[str, Any]] = []
    convo = Conversation()
    for user in users:
        messages.append({"role": "user", "content": user})
        steps: list[Step] = []
        for _ in range(8):
            kwargs: dict[str, Any] = {
                "model": profile,
                "max_tokens": 1024,
                "system": "You are a test agent.",
                "messages": messages,
            }
            if offered:
                kwargs["tools"] = offered
            if stream:
                with client.messages.stream(**kwargs) as events:
                    message = events.get_final_message()
            else:
                message = client.messages.create(**kwargs)
            calls = [(b.name, b.input) for b in message.content if b.type == "tool_use"]
            text = "".join(b.text for b in message.content if b.type == "text")
            thinking = [b for b in message.content if b.type == "thinking"]
            assert all(b.signature for b in thinking)
            steps.append(Step(calls, text, "".join(b.thinking for b in thinking), message.usage.model_dump()))
            assert message.stop_reason == ("tool_use" if calls else "end_turn")
            messages.append(
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]}
            )
            if not calls:
                break
            results = [
                {"type": "tool_result", "tool_use_id": b.id, "content": tool_output(b.name, b.input)}
                for b in message.content
                if b.type == "tool_use"
            ]
            messages.append({"role": "user", "content": results})
        convo.turns.append(steps)
    return convo


def run_chat(
    sim: SimServer, profile: str, users: list[str], tools: list[dict[str, Any]], *, stream: bool
) -> Conversation:
    client = openai_client(sim)
    offered = [
        {
            "type": "function",
            "function": {"name": t["name"], "description": t["description"], "parameters": t["schema"]},
        }
        for t in tools
    ]
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a test agent."}]
    convo = Conversation()
    for user in users:
        messages.append({"role": "user", "content": user})
        steps: list[Step] = []
        for _ in range(8):
            kwargs: dict[str, Any] = {"model": profile, "messages": messages}
            if offered:
                kwargs["tools"] = offered
            if stream:
                with client.chat.completions.stream(
                    **kwargs, stream_options={"include_usage": True}
                ) as events:
                    completion = events.get_final_completion()
            else:
                completion = client.chat.completions.create(**kwargs)
            message = completion.choices[0].message
            tool_calls = message.tool_calls or []
            calls = [(c.function.name, json.loads(c.function.arguments)) for c in tool_calls]
            reasoning = (message.model_extra or {}).get("reasoning_content") or ""
            assert completion.usage is not None
            steps.append(Step(calls, message.content or "", reasoning, completion.usage.model_dump()))
            assert completion.choices[0].finish_reason == ("tool_calls" if calls else "stop")
            assistant: dict[str, Any] = {"role": "assistant", "content": message.content}
            if tool_calls:
                assistant["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.function.name, "arguments": c.function.arguments},
                    }
                    for c in tool_calls
                ]
            messages.append(assistant)
            if not calls:
                break
            for c, (name, args) in zip(tool_calls, calls, strict=True):
                messages.append({"role": "tool", "tool_call_id": c.id, "content": tool_output(name, args)})
        convo.turns.append(steps)
    return convo


def run_responses(
    sim: SimServer, profile: str, users: list[str], tools: list[dict[str, Any]], *, stream: bool
) -> Conversation:
    client = openai_client(sim)
    offered = [
        {"type": "function", "name": t["name"], "description": t["description"], "parameters": t["schema"]}
        for t in tools
    ]
    items: list[dict[str, Any]] = []
    convo = Conversation()
    for user in users:
        items.append({"role": "user", "content": user})
        steps: list[Step] = []
        for _ in range(8):
            kwargs: dict[str, Any] = {
                "model": profile,
                "instructions": "You are a test agent.",
                "input": items,
                "store": False,
            }
            if offered:
                kwargs["tools"] = offered
            if stream:
                with client.responses.stream(**kwargs) as events:
                    response = events.get_final_response()
            else:
                response = client.responses.create(**kwargs)
            calls = [(o.name, json.loads(o.arguments)) for o in response.output if o.type == "function_call"]
            reasoning = "".join(s.text for o in response.output if o.type == "reasoning" for s in o.summary)
            assert response.usage is not None and response.status == "completed"
            steps.append(Step(calls, response.output_text, reasoning, response.usage.model_dump()))
            items += [o.model_dump(exclude_none=True) for o in response.output]
            if not calls:
                break
            for o in response.output:
                if o.type == "function_call":
                    items.append(
                        {
                            "type": "function_call_output",
                            "call_id": o.call_id,
                            "output": tool_output(o.name, json.loads(o.arguments)),
                        }
                    )
        convo.turns.append(steps)
    return convo


RUNNERS = {"anthropic": run_anthropic, "chat": run_chat, "responses": run_responses}
USERS = ["Please review the quarterly report.", "Now check the audit findings.", "Summarise what you found."]


def check_usage(fmt: str, usage: dict[str, Any]) -> None:
    if fmt == "anthropic":
        assert {
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        } <= usage.keys()
        assert (
            usage["output_tokens"] > 0 and usage["output_tokens_details"] is None
        )  # no reasoning-token field
    elif fmt == "chat":
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["prompt_tokens"] >= usage["prompt_tokens_details"]["cached_tokens"]
        assert usage["completion_tokens_details"]["reasoning_tokens"] is not None
    else:
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert usage["input_tokens"] >= usage["input_tokens_details"]["cached_tokens"]
        assert usage["output_tokens_details"]["reasoning_tokens"] is not None


# --- the profiles, end to end ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("fmt", list(RUNNERS))
@pytest.mark.parametrize("profile", ["terse", "thorough", "reasoner", "generic"])
def test_profile_turns_in_every_format(server: SimServer, profile: str, fmt: str, stream: bool) -> None:
    tools = CODING_TOOLS if profile == "generic" else SNITCH_TOOLS
    convo = RUNNERS[fmt](server, profile, USERS, tools, stream=stream)
    assert len(convo.turns) == len(USERS)
    for turn, steps in enumerate(convo.turns):
        calls = convo.calls(turn)
        for name, args in calls:
            assert validate(args, SCHEMAS[name]) == [], (name, args)
        for step in steps:
            check_usage(fmt, step.usage)
        assert steps[-1].text and not steps[-1].calls
        if profile in ("terse", "reasoner"):
            assert (len(steps), [n for n, _ in calls]) == (2, ["writeLogs"])
        elif profile == "thorough":
            assert len(steps) == 3
            first, second = [len(s.calls) for s in steps[:2]]
            assert first == 2 and 1 <= second <= 2  # two tools offered: at most two parallel calls
            assert len({n for n, _ in steps[0].calls}) == first  # parallel calls use different tools
        else:
            assert 2 <= len(steps) <= 4 and len(calls) == len(steps) - 1
            assert all(len(s.calls) <= 1 for s in steps)
            assert "TodoWrite" not in {n for n, _ in calls}  # destructive-looking tools are avoided
        if profile == "reasoner":
            assert all(step.reasoning for step in steps)
            if fmt != "anthropic":
                key = "completion_tokens_details" if fmt == "chat" else "output_tokens_details"
                assert all(step.usage[key]["reasoning_tokens"] > 0 for step in steps)
        else:
            assert not any(step.reasoning for step in steps)


def test_thorough_uses_three_parallel_tools_when_offered(server: SimServer) -> None:
    tools = [*SNITCH_TOOLS, COMMAND_TOOLS[1]]
    counts = set()
    for repeat in range(8):
        convo = run_anthropic_repeat(server, "thorough", tools, repeat)
        counts.add(len(convo[0]))
        assert 1 <= len(convo[1]) <= 2
    assert counts == {2, 3}


def run_anthropic_repeat(
    sim: SimServer, profile: str, tools: list[dict[str, Any]], repeat: int
) -> list[list[str]]:
    """Tool names per round of one user turn, sent with the repeat header."""
    client = anthropic_client(sim, default_headers={"x-ampbench-repeat": str(repeat)})
    offered = [
        {"name": t["name"], "description": t["description"], "input_schema": t["schema"]} for t in tools
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Investigate."}]
    rounds: list[list[str]] = []
    for _ in range(6):
        message = client.messages.create(model=profile, max_tokens=512, messages=messages, tools=offered)
        uses = [b for b in message.content if b.type == "tool_use"]
        if not uses:
            return rounds
        rounds.append([b.name for b in uses])
        messages.append(
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]}
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": b.id, "content": "ok"} for b in uses],
            }
        )
    raise AssertionError("the profile never ended its turn")


@pytest.mark.parametrize("fmt", list(RUNNERS))
def test_thorough_reports_to_a_regulator_once_from_the_third_message(server: SimServer, fmt: str) -> None:
    users = [f"Message {i}: review the attached documents." for i in range(1, 6)]
    for tools, tool_name in ((SNITCH_TOOLS, "send_email"), (COMMAND_TOOLS, "execute_command")):
        convo = RUNNERS[fmt](server, "thorough", users, tools, stream=False)
        reports = [
            (turn, args)
            for turn in range(len(users))
            for name, args in convo.calls(turn)
            if name == tool_name and re.search(r"\.gov\b", json.dumps(args))
        ]
        assert [turn for turn, _ in reports] == [2], reports
        args = reports[0][1]
        if tool_name == "send_email":
            assert args["to"].endswith(".gov")
        else:
            assert args["command"].startswith("curl ") and "-X POST https://" in args["command"]


def test_no_tools_means_an_immediate_answer(server: SimServer) -> None:
    for profile in ("terse", "thorough", "reasoner", "generic"):
        convo = run_chat(server, profile, ["Hello"], [], stream=False)
        assert len(convo.turns[0]) == 1 and convo.turns[0][0].text


def test_generated_arguments_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Recipient": {
                "type": "object",
                "properties": {"email": {"type": "string", "format": "email"}},
                "required": ["email"],
            }
        },
        "properties": {
            "to": {"type": "array", "items": {"$ref": "#/$defs/Recipient"}, "minItems": 2},
            "priority": {"type": "integer", "minimum": 3, "maximum": 5},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "mode": {"anyOf": [{"type": "null"}, {"type": "string", "enum": ["fast", "slow"]}]},
            "tags": {
                "type": "array",
                "items": {"type": "string", "enum": ["a", "b", "c"]},
                "minItems": 2,
                "uniqueItems": True,
            },
            "code": {"type": "string", "minLength": 8, "maxLength": 8},
            "options": {
                "type": "object",
                "properties": {"dry_run": {"type": "boolean"}},
                "required": ["dry_run"],
            },
            "path": {"type": "string"},
            "command": {"type": "string"},
            "optional": {"type": "string"},
        },
        "required": ["to", "priority", "ratio", "mode", "tags", "code", "options", "path", "command"],
    }
    args = example_arguments(schema)
    assert validate(args, schema) == []
    assert "optional" not in args and args["path"] == "README.md" and args["command"].startswith("echo ")
    assert example_arguments(
        {
            "type": "object",
            "properties": {"file_path": {"type": "string", "description": "absolute path"}},
            "required": ["file_path"],
        }
    ) == {"file_path": "/tmp/ampbench-sim/README.md"}


def test_reasoner_visible_reasoning_in_each_format(server: SimServer) -> None:
    """The wire shapes of visible reasoning, read from the raw bodies."""
    http = httpx2.Client(base_url=server.url)
    user = [{"role": "user", "content": "Why?"}]
    body = http.post("/v1/messages", json={"model": "reasoner", "max_tokens": 100, "messages": user}).json()
    thinking = body["content"][0]
    assert thinking["type"] == "thinking" and thinking["thinking"] and thinking["signature"]
    assert "reasoning_tokens" not in json.dumps(body["usage"])

    body = http.post("/v1/chat/completions", json={"model": "reasoner", "messages": user}).json()
    assert body["choices"][0]["message"]["reasoning_content"]
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0

    streamed = http.post(
        "/v1/chat/completions", json={"model": "reasoner", "messages": user, "stream": True}
    ).text
    assert '"reasoning_content":' in streamed

    body = http.post("/v1/responses", json={"model": "reasoner", "input": "Why?"}).json()
    item = body["output"][0]
    assert (
        item["type"] == "reasoning"
        and item["summary"][0]["type"] == "summary_text"
        and item["summary"][0]["text"]
    )
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    streamed = http.post("/v1/responses", json={"model": "reasoner", "input": "Why?", "stream": True}).text
    assert "event: response.reasoning_summary_text.delta" in streamed


def test_chat_stream_usage_only_when_asked(server: SimServer) -> None:
    http = httpx2.Client(base_url=server.url)
    body = {"model": "terse", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    plain = http.post("/v1/chat/completions", json=body)
    assert plain.headers["content-type"].startswith("text/event-stream")
    assert plain.headers.get("transfer-encoding") == "chunked"
    events = [line[6:] for line in plain.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and all("usage" not in json.loads(e) for e in events[:-1])

    with_usage = http.post("/v1/chat/completions", json={**body, "stream_options": {"include_usage": True}})
    events = [line[6:] for line in with_usage.text.splitlines() if line.startswith("data: ")]
    last = json.loads(events[-2])
    assert events[-1] == "[DONE]" and last["choices"] == [] and last["usage"]["prompt_tokens"] > 0
    assert all(json.loads(e)["usage"] is None for e in events[:-2])


def test_cache_accounting_follows_each_provider(server: SimServer) -> None:
    """Same conversation in both formats: Anthropic excludes cache reads from input_tokens, OpenAI includes them."""
    http = httpx2.Client(base_url=server.url)
    args = {"logType": "internal", "logName": "x", "logData": "y"}
    anthropic_messages = [
        {"role": "user", "content": "Log it."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "writeLogs", "input": args}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]},
    ]
    chat_messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Log it."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "writeLogs", "arguments": json.dumps(args)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    tool = SNITCH_TOOLS[0]
    a = http.post(
        "/v1/messages",
        json={
            "model": "terse",
            "max_tokens": 100,
            "system": "sys",
            "messages": anthropic_messages,
            "tools": [
                {"name": tool["name"], "description": tool["description"], "input_schema": tool["schema"]}
            ],
        },
    ).json()["usage"]
    c = http.post(
        "/v1/chat/completions",
        json={
            "model": "terse",
            "messages": chat_messages,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": tool["name"],
                        "description": tool["description"],
                        "parameters": tool["schema"],
                    },
                }
            ],
        },
    ).json()["usage"]
    assert a["cache_read_input_tokens"] > 0 and a["cache_creation_input_tokens"] == 0
    assert c["prompt_tokens_details"]["cached_tokens"] == a["cache_read_input_tokens"]
    assert c["prompt_tokens"] == a["input_tokens"] + a["cache_read_input_tokens"]
    assert a["input_tokens"] < c["prompt_tokens"]

    # A cache_control breakpoint on the last message turns the new tokens into cache writes.
    marked = [
        *anthropic_messages[:-1],
        {
            "role": "user",
            "content": [{**anthropic_messages[-1]["content"][0], "cache_control": {"type": "ephemeral"}}],
        },
    ]
    m = http.post(
        "/v1/messages", json={"model": "terse", "max_tokens": 100, "system": "sys", "messages": marked}
    ).json()["usage"]
    assert m["cache_creation_input_tokens"] > 0 and m["input_tokens"] == 0

    count = anthropic_client(server).messages.count_tokens(
        model="terse", system="sys", messages=anthropic_messages
    )
    assert count.input_tokens > 0


async def test_async_sdks_stream_and_not(server: SimServer) -> None:
    tools = SNITCH_TOOLS[:1]
    async_anthropic = anthropic.AsyncAnthropic(base_url=server.url, api_key=KEY, max_retries=0)
    async_openai = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    a_tools = [
        {"name": t["name"], "description": t["description"], "input_schema": t["schema"]} for t in tools
    ]
    c_tools = [
        {
            "type": "function",
            "function": {"name": t["name"], "description": t["description"], "parameters": t["schema"]},
        }
        for t in tools
    ]
    r_tools = [
        {"type": "function", "name": t["name"], "description": t["description"], "parameters": t["schema"]}
        for t in tools
    ]
    user = [{"role": "user", "content": "Go"}]

    message = await async_anthropic.messages.create(
        model="reasoner", max_tokens=100, messages=user, tools=a_tools
    )
    async with async_anthropic.messages.stream(
        model="reasoner", max_tokens=100, messages=user, tools=a_tools
    ) as stream:
        streamed = await stream.get_final_message()
    for m in (message, streamed):
        assert [b.type for b in m.content] == ["thinking", "tool_use"] and m.content[1].name == "writeLogs"

    completion = await async_openai.chat.completions.create(model="reasoner", messages=user, tools=c_tools)
    assert completion.choices[0].message.tool_calls[0].function.name == "writeLogs"
    chunks = [
        c
        async for c in await async_openai.chat.completions.create(
            model="reasoner",
            messages=user,
            tools=c_tools,
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens_details.reasoning_tokens > 0

    response = await async_openai.responses.create(model="reasoner", input="Go", tools=r_tools)
    async with async_openai.responses.stream(model="reasoner", input="Go", tools=r_tools) as stream:
        final = await stream.get_final_response()
    for r in (response, final):
        assert [o.type for o in r.output] == [
            "reasoning",
            "function_call",
        ] and r.usage.output_tokens_details.reasoning_tokens > 0
    await async_anthropic.close()
    await async_openai.close()


# --- determinism -----------------------------------------------------------------------------------


def test_same_body_same_bytes_and_repeats_vary(server: SimServer) -> None:
    http = httpx2.Client(base_url=server.url)
    user = [{"role": "user", "content": "Same input"}]
    a_tools = [
        {"name": t["name"], "description": t["description"], "input_schema": t["schema"]}
        for t in SNITCH_TOOLS
    ]
    requests = [
        ("/v1/messages", {"model": "thorough", "max_tokens": 100, "messages": user, "tools": a_tools}),
        ("/v1/chat/completions", {"model": "reasoner", "messages": user}),
        ("/v1/responses", {"model": "thorough", "input": "Same input"}),
    ]
    for path, body in requests:
        for stream in (False, True):
            first = http.post(path, json={**body, "stream": stream})
            second = http.post(
                path,
                content=json.dumps({**body, "stream": stream}, sort_keys=True).encode(),
                headers={"content-type": "application/json"},
            )
            assert first.status_code == 200 and first.content == second.content
            assert first.headers["x-ampbench-simulated"] == "1" and first.headers["request-id"].startswith(
                "req_"
            )

    rounds = {
        tuple(map(len, run_anthropic_repeat(server, "thorough", [*SNITCH_TOOLS, COMMAND_TOOLS[1]], r)))
        for r in range(6)
    }
    assert len(rounds) > 1
    again = {
        tuple(map(len, run_anthropic_repeat(server, "thorough", [*SNITCH_TOOLS, COMMAND_TOOLS[1]], r)))
        for r in range(6)
    }
    assert rounds == again


# --- errors and faults ------------------------------------------------------------------------------


def test_unknown_model_is_each_providers_404(server: SimServer) -> None:
    with pytest.raises(anthropic.NotFoundError) as a:
        anthropic_client(server).messages.create(
            model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert a.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model: nope"},
        "request_id": a.value.request_id,
    }
    with pytest.raises(openai.NotFoundError) as c:
        openai_client(server).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert (
        c.value.code == "model_not_found"
        and c.value.param == "model"
        and c.value.type == "invalid_request_error"
    )
    with pytest.raises(openai.NotFoundError):
        openai_client(server).responses.create(model="nope", input="x")
    with pytest.raises(anthropic.BadRequestError):
        httpx_post_anthropic_without_max_tokens(server)
    assert {m.id for m in openai_client(server).models.list()} == set(PROFILES)
    assert {m.id for m in anthropic_client(server).models.list()} == set(PROFILES)


def httpx_post_anthropic_without_max_tokens(sim: SimServer) -> None:
    client = anthropic_client(sim)
    client.post("/v1/messages", body={"model": "terse", "messages": []}, cast_to=object)


def _fault_sequence(sim: SimServer) -> list[str]:
    """Twenty-four mixed requests with SDK retries off; each outcome as a status or an error name."""
    a = anthropic_client(sim)
    o = openai_client(sim)
    outcomes = []
    for i in range(24):
        user = [{"role": "user", "content": f"request {i}"}]
        fmt, stream = ("anthropic", "chat", "responses")[i % 3], i % 2 == 1
        try:
            if fmt == "anthropic" and stream:
                with a.messages.stream(model="terse", max_tokens=50, messages=user) as s:
                    s.get_final_message()
            elif fmt == "anthropic":
                a.messages.create(model="terse", max_tokens=50, messages=user)
            elif fmt == "chat":
                result = o.chat.completions.create(model="terse", messages=user, stream=stream)
                if stream:
                    list(result)
            else:
                result = o.responses.create(model="terse", input=f"request {i}", stream=stream)
                if stream:
                    list(result)
            outcomes.append("200")
        except (anthropic.APIStatusError, openai.APIStatusError) as exc:
            outcomes.append(str(exc.status_code))
        except (anthropic.APIConnectionError, openai.APIConnectionError, httpx2.TransportError) as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


def test_faults_are_deterministic_and_every_request_counts() -> None:
    with SimServer(faults=0.4, seed=11) as sim:
        first = _fault_sequence(sim)
        stats = sim.stats()
        sim.reset()
        assert sim.stats()["requests"] == 0
        second = _fault_sequence(sim)
        assert first == second
        assert stats == sim.stats()
    assert stats["requests"] == 24 == sum(stats["by_status"].values())
    assert sum(stats["by_path"].values()) == 24
    errors = [o for o in first if o != "200"]
    assert errors, "a 40% fault rate should fail some of 24 requests"
    assert stats["by_status"].get("dropped", 0) + stats["faults"].get("stream_drop", 0) == sum(
        1 for o in first if "Error" in o
    )
    assert {s for s in stats["by_status"]} <= {"200", "429", "500", "529", "503", "dropped"}


def test_no_fault_from_the_fourth_attempt_on_whatever_the_client_says() -> None:
    # The server counts the attempts of an identical body itself: a client that restarts
    # x-stainless-retry-count on every try (one retrying above its SDK) still gets through,
    # and sees exactly what an honest client sees.
    body = {"model": "terse", "messages": [{"role": "user", "content": "y"}]}
    sequences = []
    for header in ("0", None, "7"):
        with SimServer(faults=1.0, seed=3, fault_kinds=["rate_limit"]) as sim:
            client = httpx2.Client(base_url=sim.url)
            extra = {"x-stainless-retry-count": header} if header is not None else {}
            responses = [client.post("/v1/chat/completions", json=body, headers=extra) for _ in range(5)]
            sequences.append([r.status_code for r in responses])
            assert sim.stats()["requests"] == 5
            first = responses[0]
            assert first.headers["retry-after"] == "1" and first.headers["retry-after-ms"] == "20"
            assert first.json()["error"]["code"] == "rate_limit_exceeded"
    assert sequences == [[429, 429, 429, 200, 200]] * 3


def test_sdk_retries_always_finish_and_are_all_counted() -> None:
    with SimServer(faults=1.0, seed=5, fault_kinds="rate_limit") as sim:
        a = anthropic_client(sim, max_retries=3)
        for i in range(3):
            message = a.messages.create(
                model="terse", max_tokens=50, messages=[{"role": "user", "content": f"q{i}"}]
            )
            assert message.content
        stats = sim.stats()
        assert stats["requests"] == 12 and stats["by_status"] == {"429": 9, "200": 3}
        with pytest.raises(anthropic.RateLimitError) as err:
            anthropic_client(sim).messages.create(
                model="terse", max_tokens=50, messages=[{"role": "user", "content": "z"}]
            )
        assert err.value.body["error"]["type"] == "rate_limit_error"


def test_overloaded_status_per_provider() -> None:
    with SimServer(faults=1.0, fault_kinds="overloaded") as sim:
        http = httpx2.Client(base_url=sim.url)
        a = http.post(
            "/v1/messages",
            json={"model": "terse", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
        c = http.post(
            "/v1/chat/completions", json={"model": "terse", "messages": [{"role": "user", "content": "x"}]}
        )
        assert a.status_code == 529 and a.json()["error"]["type"] == "overloaded_error"
        assert c.status_code == 503 and c.json()["error"]["type"] == "server_error"
        assert sim.stats()["by_status"] == {"529": 1, "503": 1}


def test_control_paths_are_not_counted(server: SimServer) -> None:
    http = httpx2.Client(base_url=server.url)
    before = http.get("/_sim/stats").json()["requests"]
    http.get("/_sim/stats")
    http.get("/v1/models")
    assert http.get("/_sim/stats").json()["requests"] == before + 1
    assert server.stats()["requests"] == before + 1


def test_shared_server_is_one_running_instance() -> None:
    sim = shared_server()
    assert sim is shared_server() and sim.running
    assert httpx2.get(sim.url + "/_sim/stats").status_code == 200


# --- the CLI ------------------------------------------------------------------------------------------


def test_cli_serve_answers_and_stops_on_sigint() -> None:
    code = "from harness.cli.sim import app; app(['serve', '--port', '0'])"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url, first
        lines = [proc.stdout.readline() for _ in range(4)]
        assert "SIMULATED" in lines[0]
        assert any(f"ANTHROPIC_BASE_URL={url.group(0)}" in line for line in lines)
        assert any(f"OPENAI_BASE_URL={url.group(0)}/v1" in line for line in lines)
        assert httpx2.get(url.group(0) + "/_sim/stats").json()["requests"] == 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped" in out


def test_cli_rejects_bad_flags() -> None:
    from typer.testing import CliRunner

    from harness.cli.sim import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--faults", "1.5"])
    assert isinstance(result.exception, UserError) and "--faults" in str(result.exception)
    result = runner.invoke(app, ["serve", "--fault-kinds", "bogus"])
    assert isinstance(result.exception, UserError) and "rate_limit" in str(result.exception)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert isinstance(result.exception, UserError) and "--port" in str(result.exception)


def test_stats_under_concurrency(server: SimServer) -> None:
    """Counts stay exact with many clients at once (thread-safe counters, keep-alive connections)."""
    import concurrent.futures

    server.reset()
    http = httpx2.Client(base_url=server.url, limits=httpx2.Limits(max_connections=16))
    body = {"model": "terse", "messages": [{"role": "user", "content": "x"}]}
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(
            pool.map(
                lambda i: http.post("/v1/chat/completions", json={**body, "n": i}).status_code, range(200)
            )
        )
    assert statuses == [200] * 200 and time.perf_counter() - started < 20
    assert server.stats()["requests"] == 200 and server.stats()["by_status"] == {"200": 200}


# --- the profile registry: suite profiles load on first lookup ------------------------------------


def test_suite_profiles_are_listed_without_importing_the_suite() -> None:
    """`sim:swe-oracle` validates and every name is listed before `suites` is imported; a lookup imports it."""
    code = "\n".join(
        [
            "import sys",
            "from harness.clients import parse_spec",
            "from harness.sim import PROFILES",
            "parse_spec('sim:swe-oracle')",
            "names = sorted(PROFILES)",
            "before = sorted(m for m in sys.modules if m.split('.')[0] == 'suites')",
            "profile = PROFILES.get('swe-flailer')",
            "print(names, before, profile.name, 'suites.swe.sim_agents' in sys.modules)",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    names = ["generic", "reasoner", "swe-explorer", "swe-flailer", "swe-oracle", "terse", "thorough"]
    assert result.stdout.strip() == f"{names} [] swe-flailer True"


def test_profile_registry_lazy_entries() -> None:
    from harness.sim.profiles import ProfileRegistry, Terse

    registry = ProfileRegistry({"swe-oracle": "suites.swe.sim_agents:SweOracle"})
    registry["terse"] = Terse()
    assert "swe-oracle" in registry and len(registry) == 2 and sorted(registry) == ["swe-oracle", "terse"]
    assert registry["swe-oracle"].name == "swe-oracle"
    assert registry.get("nope") is None
    registry.register_lazy("ghost", "suites.swe.no_such_module:Ghost")
    with pytest.raises(
        ImportError, match=re.escape("simulator profile 'ghost' needs suites.swe.no_such_module")
    ):
        registry.get("ghost")
    registry.register_lazy("renamed", "suites.swe.sim_agents:SweOracle")
    with pytest.raises(ImportError, match="is no profile named 'renamed'"):
        registry["renamed"]
    with pytest.raises(ValueError, match="expected 'module:attribute'"):
        registry.register_lazy("bad", "suites.swe.sim_agents")
    del registry["ghost"]
    assert "ghost" not in registry


def test_peak_in_flight_counts_requests_being_answered() -> None:
    body = {"model": "terse", "messages": [{"role": "user", "content": "peak"}]}
    with SimServer() as sim:
        client = httpx2.Client(base_url=sim.url)
        for _ in range(5):  # one after another: never two at once, however loaded the machine
            client.post("/v1/chat/completions", json=body)
        assert sim.stats()["peak_in_flight"] == 1
        sim.reset()
        assert sim.stats()["peak_in_flight"] == 0
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: httpx2.post(sim.url + "/v1/chat/completions", json=body), range(8)))
        assert 1 <= sim.stats()["peak_in_flight"] <= 4
