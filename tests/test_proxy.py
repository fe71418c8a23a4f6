"""The counting proxy against the official SDKs, over real HTTP on loopback.

Ground truth is the simulator's server-side count (`SimServer.stats()`): the
proxy must write exactly one row per request the simulator received, hand
the client the same bytes it would get directly, and keep concurrent
sessions apart.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import anthropic
import h11
import httpx2
import openai
import pytest

from harness.errors import UserError
from harness.proxy import ProxyConfig, ProxyThread
from harness.proxy.attribution import Attributor, key_hash, read_request
from harness.proxy.upstream import Refused, Route, resolve
from harness.results import load
from harness.sim import SimServer
from tests.conftest import ampbench

KEY = "sk-proxy-test-0123456789abcdef"
TOOL = {
    "name": "lookup",
    "description": "Look a record up",
    "schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    },
}
ANTHROPIC_TOOLS = [{"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["schema"]}]
CHAT_TOOLS = [
    {
        "type": "function",
        "function": {"name": TOOL["name"], "description": TOOL["description"], "parameters": TOOL["schema"]},
    }
]
RESPONSES_TOOLS = [
    {
        "type": "function",
        "name": TOOL["name"],
        "description": TOOL["description"],
        "parameters": TOOL["schema"],
    }
]


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[..., ProxyThread]]:
    started: list[ProxyThread] = []

    def start(**config: Any) -> ProxyThread:
        config.setdefault("out", tmp_path / f"run{len(started)}")
        proxy = ProxyThread(ProxyConfig(**config)).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def exchange_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "exchanges.jsonl").read_text().splitlines() if line]


def task_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "tasks.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def sync_clients(base: str, **kw: Any) -> tuple[anthropic.Anthropic, openai.OpenAI]:
    kw.setdefault("max_retries", 0)
    return (
        anthropic.Anthropic(base_url=base, api_key=KEY, **kw),
        openai.OpenAI(base_url=base + "/v1", api_key=KEY, **kw),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- byte identity -----------------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Find the record for ACME."}]


def sync_bodies(base: str) -> list[bytes]:
    """Raw response bodies of every endpoint and mode, from the sync SDKs."""
    a, o = sync_clients(base)
    out: list[bytes] = []
    for stream in (False, True):
        with a.messages.with_streaming_response.create(
            model="thorough", max_tokens=300, messages=MESSAGES, tools=ANTHROPIC_TOOLS, stream=stream
        ) as r:
            out.append(r.read())
        with o.chat.completions.with_streaming_response.create(
            model="reasoner", messages=MESSAGES, tools=CHAT_TOOLS, stream=stream
        ) as r:
            out.append(r.read())
        with o.responses.with_streaming_response.create(
            model="reasoner", input="Find the record for ACME.", tools=RESPONSES_TOOLS, stream=stream
        ) as r:
            out.append(r.read())
    out.append(a.messages.count_tokens(model="thorough", messages=MESSAGES).to_json().encode())
    out.append(b"".join(m.id.encode() for m in o.models.list()))
    return out


async def async_bodies(base: str) -> list[bytes]:
    a = anthropic.AsyncAnthropic(base_url=base, api_key=KEY, max_retries=0)
    o = openai.AsyncOpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0)
    out: list[bytes] = []
    for stream in (False, True):
        async with a.messages.with_streaming_response.create(
            model="terse", max_tokens=300, messages=MESSAGES, tools=ANTHROPIC_TOOLS, stream=stream
        ) as r:
            out.append(await r.read())
        async with o.chat.completions.with_streaming_response.create(
            model="terse", messages=MESSAGES, tools=CHAT_TOOLS, stream=stream
        ) as r:
            out.append(await r.read())
        async with o.responses.with_streaming_response.create(
            model="terse", input="Find the record for ACME.", tools=RESPONSES_TOOLS, stream=stream
        ) as r:
            out.append(await r.read())
    return out


def test_sdks_get_the_same_bytes_through_the_proxy(sim: SimServer, start_proxy: Any) -> None:
    direct = sync_bodies(sim.url) + asyncio.run(async_bodies(sim.url))
    before = sim.stats()["requests"]
    proxy = start_proxy(upstream=sim.url)
    proxied = sync_bodies(proxy.url) + asyncio.run(async_bodies(proxy.url))
    assert proxied == direct
    assert all(body.lstrip().startswith((b"event:", b"data:")) for body in direct[3:6])  # the streams

    # The SDKs' own stream helpers accumulate the relayed SSE into the same final objects.
    a, o = sync_clients(proxy.url)
    with a.messages.stream(model="thorough", max_tokens=300, messages=MESSAGES, tools=ANTHROPIC_TOOLS) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use" and any(b.type == "tool_use" for b in final.content)
    with o.responses.stream(model="reasoner", input="Find the record for ACME.", tools=RESPONSES_TOOLS) as s:
        assert s.get_final_response().status == "completed"

    sent = sim.stats()["requests"] - before
    run_dir = proxy.stop()
    rows = exchange_rows(run_dir)
    assert len(rows) == sent == 16
    endpoints = {r["endpoint"] for r in rows}
    assert endpoints == {
        "/v1/messages",
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/messages/count_tokens",
        "/v1/models",
    }
    # count_tokens and model listings are exchanges, not model calls.
    assert sum(r["model_call"] for r in rows) == 14
    assert all(r["status"] == 200 and r["error"] is None for r in rows)
    streamed = [r for r in rows if r["streamed"]]
    assert len(streamed) == 8 and all(r["ttfb_ms"] is not None for r in streamed)
    # Tokens, tool calls and visible reasoning come from the shared parsers.
    reasoner = [r for r in rows if r["request_model"] == "reasoner" and r["model_call"]]
    assert all(r["visible_reasoning_chars"] > 0 for r in reasoner)
    for r in rows:
        if r["model_call"] and not (r["endpoint"] == "/v1/chat/completions" and r["streamed"]):
            assert r["input_tokens"] and r["output_tokens"], r
        elif r["model_call"]:  # chat streams without include_usage carry no usage: unknown, not 0
            assert r["input_tokens"] is None and r["output_tokens"] is None
    assert sum(r["tool_calls"] for r in rows) > 0
    # `ampbench report` reads the run unchanged.
    data = load(run_dir)
    assert int(data.tasks["exchanges"].sum()) == 16 and data.orphaned_exchanges == 0
    assert data.manifest["status"] == "complete"


class _Upstream(BaseHTTPRequestHandler):
    """A tiny upstream for what the simulator never does: gzip bodies, SSE held between events."""

    protocol_version = "HTTP/1.1"
    release = threading.Event()
    seen_headers: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
        if self.path.startswith("/v1/messages") and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(
                json.dumps(
                    {
                        "id": "msg_gz",
                        "type": "message",
                        "role": "assistant",
                        "model": "gz",
                        "content": [{"type": "text", "text": "compressed"}],
                        "stop_reason": "end_turn",
                        "stop_sequence": None,
                        "usage": {"input_tokens": 7, "output_tokens": 3},
                    }
                ).encode()
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, frame in enumerate([b"event: ping\ndata: {}\n\n", b"event: done\ndata: {}\n\n"]):
            if index == 1:
                self.release.wait(5)  # the second event only once the client has seen the first
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def raw_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Upstream.release.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Upstream.release.set()
    server.shutdown()
    server.server_close()


def test_streams_pass_event_by_event_and_encodings_untouched(raw_upstream: str, start_proxy: Any) -> None:
    proxy = start_proxy(upstream=raw_upstream)
    with httpx2.Client(timeout=10) as client:
        started = time.perf_counter()
        with client.stream(
            "POST", proxy.url + "/v1/chat/completions", json={"model": "x", "stream": True}
        ) as r:
            chunks = r.iter_raw()
            first = next(chunks)
            waited = time.perf_counter() - started
            _Upstream.release.set()
            rest = b"".join(chunks)
        # Had the proxy buffered the stream, the first event would only arrive after the upstream's 5 s wait.
        assert first.startswith(b"event: ping") and waited < 2.5
        assert rest.endswith(b"event: done\ndata: {}\n\n")

        # Content-Encoding passes through: the client gets the gzip bytes and decodes them itself.
        request = client.build_request("POST", proxy.url + "/v1/messages", json={"model": "gz"})
        request.headers["Accept-Encoding"] = "gzip"
        r = client.send(request, stream=True)
        raw = b"".join(r.iter_raw())
        r.close()
        assert r.headers["content-encoding"] == "gzip" and gzip.decompress(raw).startswith(b'{"id": "msg_gz"')
    a = anthropic.Anthropic(base_url=proxy.url, api_key=KEY, max_retries=0)
    reply = a.messages.create(
        model="gz", max_tokens=5, messages=MESSAGES, extra_headers={"x-ampbench-session": "gz"}
    )
    assert reply.content[0].text == "compressed"
    # Keys go upstream; the proxy's own session header and hop-by-hop headers do not.
    seen = _Upstream.seen_headers[-1]
    assert seen["authorization"] == f"Bearer {KEY}" and "x-ampbench-session" not in seen
    assert seen["host"] == raw_upstream.removeprefix("http://")
    rows = exchange_rows(proxy.stop())
    gz = [r for r in rows if r["endpoint"] == "/v1/messages"]
    # The row was parsed from a decoded copy: tokens known, response_bytes counts the wire bytes.
    assert [(r["input_tokens"], r["output_tokens"]) for r in gz] == [(7, 3), (7, 3)]
    assert gz[0]["response_bytes"] == len(raw)


# --- sessions ----------------------------------------------------------------------------------


async def _anthropic_session(
    client: anthropic.AsyncAnthropic, first: str, turns: int, headers: dict[str, str]
) -> int:
    messages: list[dict[str, Any]] = []
    sent = 0
    for turn in range(turns):
        messages.append({"role": "user", "content": first if turn == 0 else f"{first} (follow-up {turn})"})
        while True:
            reply = await client.messages.create(
                model="terse", max_tokens=200, messages=messages, tools=ANTHROPIC_TOOLS, extra_headers=headers
            )
            sent += 1
            messages.append(
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]}
            )
            uses = [b for b in reply.content if b.type == "tool_use"]
            if not uses:
                break
            results = [{"type": "tool_result", "tool_use_id": u.id, "content": "found"} for u in uses]
            messages.append({"role": "user", "content": results})
    return sent


async def _chat_session(client: openai.AsyncOpenAI, first: str, turns: int, headers: dict[str, str]) -> int:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a test agent."}]
    sent = 0
    for turn in range(turns):
        messages.append({"role": "user", "content": first if turn == 0 else f"{first} (follow-up {turn})"})
        while True:
            completion = await client.chat.completions.create(
                model="terse", messages=messages, tools=CHAT_TOOLS, extra_headers=headers
            )
            sent += 1
            message = completion.choices[0].message
            calls = message.tool_calls or []
            assistant: dict[str, Any] = {"role": "assistant", "content": message.content}
            if calls:
                assistant["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.function.name, "arguments": c.function.arguments},
                    }
                    for c in calls
                ]
            messages.append(assistant)
            if not calls:
                break
            messages += [{"role": "tool", "tool_call_id": c.id, "content": "found"} for c in calls]
    return sent


async def _responses_session(
    client: openai.AsyncOpenAI, first: str, turns: int, headers: dict[str, str]
) -> int:
    items: list[dict[str, Any]] = []
    sent = 0
    for turn in range(turns):
        items.append({"role": "user", "content": first if turn == 0 else f"{first} (follow-up {turn})"})
        while True:
            response = await client.responses.create(
                model="terse", input=items, tools=RESPONSES_TOOLS, store=False, extra_headers=headers
            )
            sent += 1
            items += [o.model_dump(exclude_none=True) for o in response.output]
            calls = [o for o in response.output if o.type == "function_call"]
            if not calls:
                break
            items += [
                {"type": "function_call_output", "call_id": c.call_id, "output": "found"} for c in calls
            ]
    return sent


def test_fifty_concurrent_sessions_are_not_mixed(sim: SimServer, start_proxy: Any) -> None:
    proxy = start_proxy(upstream=sim.url)

    async def main() -> dict[str, tuple[int, int]]:
        a = anthropic.AsyncAnthropic(base_url=proxy.url, api_key=KEY, max_retries=0)
        o = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key=KEY, max_retries=0)
        runners = (
            lambda first, turns, h: _anthropic_session(a, first, turns, h),
            lambda first, turns, h: _chat_session(o, first, turns, h),
            lambda first, turns, h: _responses_session(o, first, turns, h),
        )
        plans = []
        for i in range(50):
            # Even sessions name themselves; odd ones are told apart by their first message only.
            name = f"named-{i}" if i % 2 == 0 else f"session {i}: check the records"
            headers = {"x-ampbench-session": name} if i % 2 == 0 else {}
            plans.append(
                (name, runners[i % 3](f"session {i}: check the records", 1 + i % 3, headers), 1 + i % 3)
            )
        counts = await asyncio.gather(*(coro for _, coro, _ in plans))
        return {name: (n, turns) for (name, _, turns), n in zip(plans, counts, strict=True)}

    expected = asyncio.run(main())
    run_dir = proxy.stop()
    tasks = task_rows(run_dir)
    assert len(tasks) == 50
    got = {(t["task_id"] if t["attribution"] == "x-ampbench-session" else t["label"]): t for t in tasks}
    assert {name: (int(t["exchanges"]), int(t["user_turns"])) for name, t in got.items()} == expected
    assert all(int(t["retries"]) == 0 and t["status"] == "ok" for t in tasks)
    assert len(exchange_rows(run_dir)) == sum(n for n, _ in expected.values()) == sim.stats()["requests"]


# --- lining a session up with the agent's own numbers --------------------------------------------

CC_SESSION = {"x-claude-code-session-id": "cc-offline"}
BREAKDOWN = ("main_exchanges", "side_exchanges", "non_model_exchanges")


def _claude_code_like(base: str, side_model: str) -> int:
    """What `claude -p` sends, in its order: a probe, count_tokens, a title request, a 2-call tool loop.

    Returns the main loop's model calls: the agent's own `num_turns`.
    """
    # Connectivity check: no session header, no body; the simulator answers 501 and does not count it.
    assert httpx2.head(base + "/", timeout=10).status_code == 501
    a = anthropic.Anthropic(
        base_url=base, api_key=KEY, max_retries=0, default_headers=CC_SESSION, default_query={"beta": "true"}
    )
    ask = "List the files in the current directory"
    a.messages.count_tokens(model="terse", messages=[{"role": "user", "content": ask}])
    # A side call: another first message, no tools (on the small model, or on the main one when
    # ANTHROPIC_SMALL_FAST_MODEL names it).
    title = a.messages.create(
        model=side_model,
        max_tokens=50,
        messages=[{"role": "user", "content": f"Write a 3-7 word title for this request: {ask}"}],
    )
    assert title.stop_reason == "end_turn"
    messages: list[dict[str, Any]] = [{"role": "user", "content": ask}]
    turns = 0
    while True:
        reply = a.messages.create(model="terse", max_tokens=200, messages=messages, tools=ANTHROPIC_TOOLS)
        turns += 1
        messages.append(
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]}
        )
        uses = [b for b in reply.content if b.type == "tool_use"]
        if not uses:
            return turns
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": u.id, "content": "notes.txt"} for u in uses
                ]
                + [{"type": "text", "text": "<system-reminder>be brief</system-reminder>"}],
            }
        )


@pytest.mark.parametrize("side_model", ["reasoner", "terse"])
def test_claude_code_like_session_splits_into_main_side_and_non_model(
    side_model: str, sim: SimServer, start_proxy: Any
) -> None:
    proxy = start_proxy(upstream=sim.url)
    num_turns = _claude_code_like(proxy.url, side_model)
    # The simulator's own count, over HTTP: /_sim/ paths are passed through but are no exchanges.
    sim_stats = httpx2.get(proxy.url + "/_sim/stats", timeout=10).json()
    assert sim_stats == httpx2.get(sim.url + "/_sim/stats", timeout=10).json()
    assert httpx2.get(proxy.url + "/_ampbench/stats", timeout=10).json()["exchanges"] == 5
    run_dir = proxy.stop()

    assert num_turns == 2
    # Counted by the simulator: count_tokens, the title request and the two model calls; the proxy
    # also saw the HEAD probe, which the simulator answers 501 without counting.
    assert sim_stats["requests"] == 4
    assert sim_stats["by_path"] == {"/v1/messages/count_tokens": 1, "/v1/messages": 3}
    rows = exchange_rows(run_dir)
    assert [(r["method"], r["endpoint"], r["status"]) for r in rows] == [
        ("HEAD", "/", 501),
        ("POST", "/v1/messages/count_tokens", 200),
        ("POST", "/v1/messages", 200),
        ("POST", "/v1/messages", 200),
        ("POST", "/v1/messages", 200),
    ]
    assert len(rows) == sim_stats["requests"] + 1

    (task,) = task_rows(run_dir)  # the probe joins the run's only session
    counts = {c: int(task[c]) for c in (*BREAKDOWN, "exchanges", "model_calls")}
    assert counts == {
        "main_exchanges": 2,
        "side_exchanges": 1,
        "non_model_exchanges": 2,
        "exchanges": 5,
        "model_calls": 3,
    }
    assert sum(counts[c] for c in BREAKDOWN) == counts["exchanges"] == sim_stats["requests"] + 1
    # The main conversation's successful model calls are what the agent counts as its turns.
    assert int(task["main_model_calls"]) == num_turns == 2
    assert int(task["side_model_calls"]) == 1
    assert int(task["main_model_calls"]) + int(task["side_model_calls"]) == int(task["model_calls"])
    assert (task["task_id"], task["model"], task["status"], task["stop_reason"]) == (
        "cc-offline",
        "terse",
        "ok",
        "completed",
    )
    assert (task["user_turns"], task["tool_calls"], task["conversations"]) == ("1", "1", "2")
    main_rows = [r for r in rows if r["conversation"] == task["main_conversation"] and r["generation"]]
    assert [r["request_model"] for r in main_rows] == ["terse", "terse"]
    # The session's prompt is the main conversation's first call, not the title request.
    assert int(task["prompt_tokens"]) == main_rows[0]["input_tokens"]
    # `ampbench report` loads the columns; the per-session table shows them.
    from harness.cli.proxy import session_breakdown

    tasks = load(run_dir).tasks
    assert [int(tasks[c].iloc[0]) for c in BREAKDOWN] == [2, 1, 2]
    assert session_breakdown(tasks).row_count == 1


def _row(step: int, conversation: str, **values: Any) -> dict[str, Any]:
    """A proxy exchange row with only what the session rules read."""
    row = {
        "task_id": "s",
        "repeat": 0,
        "step": step,
        "attempt": 1,
        "method": "POST",
        "endpoint": "/v1/messages",
        "host": "127.0.0.1",
        "status": 200,
        "error": None,
        "sent": True,
        "conversation": conversation,
        "request_model": "big",
        "generation": True,
        "offered_tools": 1,
        "user_turn": 1,
        "input_tokens": 10,
        "output_tokens": 2,
        "tool_calls": 0,
        "attribution": "x-claude-code-session-id",
    }
    row.update(values)
    row["model_call"] = bool(row["generation"] and row["sent"] and row["status"] == 200 and not row["error"])
    return row


def test_failed_attempts_keep_their_kind_and_the_columns_add_up() -> None:
    from harness.ingest._common import Origin, tool_row
    from harness.proxy import sessions

    refused = "ConnectError: [Errno 111] Connection refused"
    rows = [
        _row(0, "none", method="HEAD", endpoint="/", status=501, generation=False, request_model=None),
        _row(0, "main", endpoint="/v1/messages/count_tokens", generation=False),
        # The title request on the small model: a 529, then its retry succeeds.
        _row(1, "title", request_model="small", offered_tools=0, status=529),
        _row(1, "title", request_model="small", offered_tools=0, attempt=2),
        # The main loop: never reached the upstream (no exchange), a 429, then three model calls.
        _row(2, "main", status=None, error=refused, sent=False),
        _row(2, "main", status=429, attempt=2),
        _row(2, "main", attempt=3, tool_calls=1, tool_names=["Bash"], input_tokens=100),
        _row(3, "main", tool_calls=1, tool_names=["Bash"]),
        _row(4, "main", stop_reason="end_turn"),
        # Another conversation of the main model (a sub-agent, a summary): a side call.
        _row(5, "other", offered_tools=0),
        _row(6, "none", method="GET", endpoint="/v1/models", generation=False, request_model=None),
    ]
    origin = Origin("run", "s", "big")
    tools = [tool_row(origin, "proxy", step=s, tool="Bash") for s in (2, 3)]
    (task,) = sessions.task_rows(rows, tools, run_id="run", labels={})
    assert task["main_conversation"] == "main" and task["model"] == "big"
    assert {c: task[c] for c in BREAKDOWN} == {
        "main_exchanges": 4,  # the 429 and the three calls; the refused attempt is no exchange
        "side_exchanges": 3,  # the 529, its retry, the other conversation
        "non_model_exchanges": 3,  # HEAD /, count_tokens (a 200 that generates nothing), GET /v1/models
    }
    assert sum(task[c] for c in BREAKDOWN) == task["exchanges"] == 10
    assert (task["main_model_calls"], task["side_model_calls"], task["model_calls"]) == (3, 2, 5)
    assert (task["unsent_attempts"], task["retries"], task["failed_exchanges"]) == (1, 3, 3)
    # Tool calls come from the tool rows: the same as the model calls' own counts.
    assert task["tool_calls"] == sum(r["tool_calls"] for r in rows if r["model_call"]) == 2
    assert task["tool_calls_by_name"] == {"Bash": 2}
    # The outcome is the main conversation's last call's, not the listing's after it.
    assert (task["status"], task["stop_reason"], task["error"]) == ("ok", "completed", None)
    assert task["prompt_tokens"] == 100
    assert task["input_tokens"] == 10 * 9 + 100  # sent rows only
    assert task["exchanges_by_endpoint"] == {
        "/": 1,
        "/v1/messages": 7,
        "/v1/messages/count_tokens": 1,
        "/v1/models": 1,
    }

    # A tie (one call each, the title first): the conversation offering tools is the main one.
    tie = [_row(1, "title", offered_tools=0), _row(2, "loop")]
    (task,) = sessions.task_rows(tie, [], run_id="run", labels={})
    assert (task["main_conversation"], task["main_model_calls"], task["side_model_calls"]) == ("loop", 1, 1)
    # The main conversation's last attempt failed: the session failed, even after a later side call.
    failed = [_row(1, "loop"), _row(2, "loop", status=500), _row(3, "title", offered_tools=0)]
    (task,) = sessions.task_rows(failed, [], run_id="run", labels={})
    assert (task["status"], task["error"], task["main_exchanges"]) == ("error", "http_500", 2)


# --- faults ------------------------------------------------------------------------------------


def _anthropic_outcome(
    base: str, stream: bool, **client: Any
) -> tuple[str, int | None, dict[str, str], bytes]:
    """What the client saw: exception type (or ok), status, retry headers, body."""
    a = anthropic.Anthropic(base_url=base, api_key=KEY, **{"max_retries": 0, **client})
    try:
        if stream:
            with a.messages.stream(
                model="terse", max_tokens=100, messages=MESSAGES, tools=ANTHROPIC_TOOLS
            ) as s:
                s.get_final_message()
        else:
            a.messages.create(model="terse", max_tokens=100, messages=MESSAGES, tools=ANTHROPIC_TOOLS)
    except anthropic.APIStatusError as exc:
        kept = {
            k: exc.response.headers[k]
            for k in ("retry-after", "retry-after-ms", "x-should-retry")
            if k in exc.response.headers
        }
        return type(exc).__name__, exc.status_code, kept, exc.response.content
    except Exception as exc:
        return type(exc).__name__, None, {}, b""
    return "ok", 200, {}, b""


@pytest.mark.parametrize(
    ("kind", "stream", "status"),
    [
        ("rate_limit", False, 429),
        ("server_error", True, 500),
        ("overloaded", False, 529),
        ("drop", False, None),
        ("stream_drop", True, 200),
        ("slow", True, 200),
    ],
)
def test_upstream_faults_reach_the_client_unchanged(
    kind: str, stream: bool, status: int | None, start_proxy: Any
) -> None:
    with SimServer(faults=1.0, fault_kinds=kind) as sim:
        direct = _anthropic_outcome(sim.url, stream)
    # A fresh simulator for the proxied request: it counts attempts itself, so the same body sent to
    # the first one again would be its second attempt (another request-id).
    with SimServer(faults=1.0, fault_kinds=kind) as sim:
        proxy = start_proxy(upstream=sim.url)
        proxied = _anthropic_outcome(proxy.url, stream)
        sent = sim.stats()["requests"]
        rows = exchange_rows(proxy.stop())
    assert proxied == direct
    assert len(rows) == sent == 1
    assert rows[0]["status"] == status
    if kind == "rate_limit":
        assert direct[2]["retry-after"] == "1" and rows[0]["headers"]["retry-after-ms"] == "20"
    if kind in ("drop", "stream_drop"):
        assert direct[0] != "ok" and rows[0]["error"]  # a broken stream is broken at the client too
        assert not rows[0]["model_call"]
    if kind == "slow":
        assert direct[0] == "ok" and rows[0]["model_call"]


def test_retries_and_timeouts_are_exchanges_an_unreachable_upstream_is_not(start_proxy: Any) -> None:
    # Three 429s, then a success: four exchanges, three retries, one model call.
    with SimServer(faults=1.0, fault_kinds="rate_limit") as sim:
        proxy = start_proxy(upstream=sim.url)
        assert _anthropic_outcome(proxy.url, False, max_retries=3)[0] == "ok"
        sent = sim.stats()["requests"]
        run_dir = proxy.stop()
    rows = exchange_rows(run_dir)
    assert len(rows) == sent == 4
    assert [(r["status"], r["attempt"]) for r in rows] == [(429, 1), (429, 2), (429, 3), (200, 4)]
    (task,) = task_rows(run_dir)
    assert (task["exchanges"], task["retries"], task["model_calls"], task["failed_exchanges"]) == (
        "4",
        "3",
        "1",
        "3",
    )

    # A client that times out: the same exception as without the proxy; the upstream still answered.
    with SimServer(faults=1.0, fault_kinds="slow") as sim:
        direct = _anthropic_outcome(sim.url, False, timeout=0.03)
        proxy = start_proxy(upstream=sim.url)
        assert _anthropic_outcome(proxy.url, False, timeout=0.03) == direct
        assert direct[0] == "APITimeoutError"
        run_dir = proxy.stop()
        assert sim.stats()["requests"] == 2
    (row,) = exchange_rows(run_dir)
    assert row["status"] == 200 and "client disconnected" in row["error"] and not row["model_call"]

    # Nothing listens upstream: a 502 in each provider's error shape, recorded with status null.
    proxy = start_proxy(upstream=f"http://127.0.0.1:{free_port()}")
    a, o = sync_clients(proxy.url)
    with pytest.raises(anthropic.InternalServerError) as caught:
        a.messages.create(model="terse", max_tokens=10, messages=MESSAGES)
    assert caught.value.status_code == 502 and caught.value.body["type"] == "error"  # type: ignore[index]
    with pytest.raises(openai.InternalServerError) as caught_oai:
        o.chat.completions.create(model="terse", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught_oai.value.status_code == 502 and caught_oai.value.code == "upstream_unreachable"
    run_dir = proxy.stop()
    rows = exchange_rows(run_dir)
    assert [(r["status"], r["proxy_status"]) for r in rows] == [(None, 502), (None, 502)]
    assert all("unreachable" in r["error"] for r in rows)
    # Connection refused: provably never sent, so kept as rows but no exchanges (as in the ledger).
    assert [r["sent"] for r in rows] == [False, False]
    counts = [
        (t["exchanges"], t["unsent_attempts"], t["model_calls"], t["status"]) for t in task_rows(run_dir)
    ]
    assert counts == [("0", "2", "0", "error")]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (manifest["exchanges"], manifest["unsent_attempts"]) == (0, 2)


# --- request targets: only /path?query, only to the upstream ------------------------------------


class _Bystander:
    """A loopback listener the proxy must never reach: counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def bystander() -> Iterator[_Bystander]:
    listener = _Bystander()
    yield listener
    listener.close()


def raw_exchange(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (HTTP clients never send odd request targets) and read the answer to EOF.

    Fails unless a whole response arrived and the proxy closed the connection after it.
    """
    host, port = url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received += chunk
    head, sep, body = received.partition(b"\r\n\r\n")
    assert sep, f"no response, the connection was dropped: {received!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    assert len(body) == int(headers["content-length"]), received
    return int(status_line.split()[1]), headers, body


ODD_TARGETS = {
    # With a numeric-port upstream, the URL http://127.0.0.1:P@127.0.0.1:Q/internal reached port Q.
    "at-host": "POST @127.0.0.1:{port}/internal HTTP/1.1",
    # With https://api.anthropic.com it named api.anthropic.com.evil.example; here, an InvalidURL
    # traceback and a dropped connection.
    "dot-host": "POST .evil.example/v1/messages HTTP/1.1",
    "absolute-form": "GET http://127.0.0.1:{port}/x HTTP/1.1",
    "connect": "CONNECT 127.0.0.1:{port} HTTP/1.1",
    "asterisk": "OPTIONS * HTTP/1.1",
    "double-slash": "GET //127.0.0.1:{port}/internal HTTP/1.1",
    "backslash": "GET /\\127.0.0.1:{port}/internal HTTP/1.1",
    "empty": "GET  HTTP/1.1",
}


@pytest.mark.parametrize("line", list(ODD_TARGETS.values()), ids=list(ODD_TARGETS))
def test_odd_request_targets_get_a_400_and_reach_nothing(
    line: str, sim: SimServer, start_proxy: Any, bystander: _Bystander
) -> None:
    refusals: list[str] = []
    proxy = start_proxy(upstream=sim.url, on_refused=refusals.append)
    body = json.dumps({"model": "terse", "max_tokens": 10, "messages": MESSAGES}).encode()
    request = (
        f"{line.format(port=bystander.port)}\r\nHost: 127.0.0.1:{bystander.port}\r\nx-api-key: {KEY}\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status, headers, answer = raw_exchange(proxy.url, request)
    assert status == 400 and headers["connection"] == "close"
    error = json.loads(answer)
    message = error["error"]["message"]
    assert message.startswith("ampbench proxy: refused: ") and "\n" not in message, message
    assert KEY not in message
    assert refusals == [message.removeprefix("ampbench proxy: refused: ")]

    # The proxy keeps serving: the next request is forwarded as usual.
    a = anthropic.Anthropic(base_url=proxy.url, api_key=KEY, max_retries=0)
    assert a.messages.create(model="terse", max_tokens=10, messages=MESSAGES).stop_reason == "end_turn"
    stats = httpx2.get(proxy.url + "/_ampbench/stats", timeout=10).json()
    assert (stats["exchanges"], stats["refused"]) == (1, 1)
    run_dir = proxy.stop()

    assert bystander.accepted == 0  # nothing reached the other listener
    assert sim.stats()["requests"] == 1  # nor the upstream: only the good request did
    rows = exchange_rows(run_dir)
    assert [(r["method"], r["endpoint"], r["status"]) for r in rows] == [("POST", "/v1/messages", 200)]
    (task,) = task_rows(run_dir)
    assert task["exchanges"] == "1"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (manifest["exchanges"], manifest["refused_requests"]) == (1, 1)
    assert manifest["refused_examples"] == refusals


def test_upstream_urls_keep_the_configured_host() -> None:
    route = resolve("https://api.anthropic.com").anthropic
    # What pasting the target onto the base URL used to build: another host.
    assert httpx2.URL("https://api.anthropic.com" + ".evil.example/v1/messages").host == (
        "api.anthropic.com.evil.example"
    )
    with pytest.raises(Refused, match=r"'\.evil\.example/v1/messages' is not origin-form"):
        route.url_for(".evil.example/v1/messages")
    refused = {
        "@127.0.0.1:9/internal": "not origin-form",
        "http://127.0.0.1:9/x": "absolute-form",
        "127.0.0.1:9": "authority-form",
        "*": "asterisk-form",
        "": "empty",
        "//127.0.0.1:9/x": "starts with an authority",
        "/\\127.0.0.1:9/x": "starts with an authority",
        "/v1/x#frag": "holds '#'",
        "/v1/a b": "holds ' '",
        "/v1/caf\u00e9": "holds",
    }
    for target, why in refused.items():
        with pytest.raises(Refused, match=why):
            route.url_for(target)
    # An origin-form target only ever becomes the path and query on the configured scheme, host and port.
    assert str(route.url_for("/v1/messages?beta=true")) == "https://api.anthropic.com/v1/messages?beta=true"
    for target in ("/@127.0.0.1:9/x", "/v1/x@127.0.0.1:9?next=http://127.0.0.1:9/", "/:9/x", "/%2F%2Fevil/x"):
        url = route.url_for(target)
        assert (url.scheme, url.host, url.port) == ("https", "api.anthropic.com", None), target
        assert url.raw_path == target.encode()
    # A base URL's path is kept, and the /v1 the SDKs add is not doubled.
    openai_route = resolve("auto", env={}).openai
    assert str(openai_route.url_for("/v1/chat/completions")) == "https://api.openai.com/v1/chat/completions"
    local = resolve("http://127.0.0.1:8080/prefix/v1").openai
    assert str(local.url_for("/v1/models?limit=2")) == "http://127.0.0.1:8080/prefix/v1/models?limit=2"
    assert str(Route("http://127.0.0.1:8080").url_for("/")) == "http://127.0.0.1:8080/"


def _h11_response(sock: socket.socket, conn: h11.Connection) -> tuple[int, bytes]:
    status, body = 0, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, body


def test_one_connection_carries_chunked_bodies_100_continue_and_head(
    sim: SimServer, start_proxy: Any
) -> None:
    proxy = start_proxy(upstream=sim.url)
    body = json.dumps({"model": "terse", "max_tokens": 10, "messages": MESSAGES}).encode()
    host = proxy.url.removeprefix("http://")
    api = [("Host", host), ("x-api-key", KEY), ("anthropic-version", "2023-06-01")]
    client = h11.Connection(h11.CLIENT)
    with socket.create_connection(("127.0.0.1", proxy.proxy.port), timeout=10) as sock:
        # A chunked request body, sent in two chunks.
        head = h11.Request(
            method="POST", target="/v1/messages", headers=[*api, ("Transfer-Encoding", "chunked")]
        )
        sock.sendall(client.send(head) + client.send(h11.Data(data=body[:20])))
        sock.sendall(client.send(h11.Data(data=body[20:])) + client.send(h11.EndOfMessage()))
        status, reply = _h11_response(sock, client)
        assert status == 200 and json.loads(reply)["stop_reason"] == "end_turn"
        client.start_next_cycle()
        # Expect: 100-continue: the body goes only once the proxy said so.
        head = h11.Request(
            method="POST",
            target="/v1/messages",
            headers=[*api, ("Content-Length", str(len(body))), ("Expect", "100-continue")],
        )
        sock.sendall(client.send(head))
        assert client.next_event() is h11.NEED_DATA
        client.receive_data(sock.recv(65536))
        informational = client.next_event()
        assert isinstance(informational, h11.InformationalResponse) and informational.status_code == 100
        sock.sendall(client.send(h11.Data(data=body)) + client.send(h11.EndOfMessage()))
        assert _h11_response(sock, client)[0] == 200
        client.start_next_cycle()
        # HEAD: the upstream's headers, no body, and the connection stays usable.
        sock.sendall(client.send(h11.Request(method="HEAD", target="/", headers=[("Host", host)])))
        sock.sendall(client.send(h11.EndOfMessage()))
        assert _h11_response(sock, client) == (501, b"")
        client.start_next_cycle()
        sock.sendall(
            client.send(h11.Request(method="GET", target="/_ampbench/stats", headers=[("Host", host)]))
        )
        sock.sendall(client.send(h11.EndOfMessage()))
        status, stats = _h11_response(sock, client)
        assert status == 200 and json.loads(stats)["exchanges"] == 3
    rows = exchange_rows(proxy.stop())
    assert [(r["method"], r["status"], r["request_bytes"]) for r in rows] == [
        ("POST", 200, len(body)),
        ("POST", 200, len(body)),
        ("HEAD", 501, 0),
    ]
    assert sim.stats()["requests"] == 2  # the simulator answers HEAD 501 without counting it


# --- record and replay --------------------------------------------------------------------------


class _Tap(httpx2.BaseTransport):
    """Keeps every response body the client received, in order."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        self.bodies.append(body)
        return httpx2.Response(response.status_code, headers=response.headers, content=body, request=request)


def _recorded_session(base: str) -> list[bytes]:
    tap = _Tap()
    client = anthropic.Anthropic(
        base_url=base, api_key=KEY, max_retries=3, http_client=httpx2.Client(transport=tap)
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Replay me: look up ACME."}]
    for step in range(4):
        if step % 2:
            with client.messages.stream(
                model="thorough", max_tokens=300, messages=messages, tools=ANTHROPIC_TOOLS
            ) as s:
                reply = s.get_final_message()
        else:
            reply = client.messages.create(
                model="thorough", max_tokens=300, messages=messages, tools=ANTHROPIC_TOOLS
            )
        messages.append(
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]}
        )
        uses = [b for b in reply.content if b.type == "tool_use"]
        if not uses:
            break
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses],
            }
        )
    return tap.bodies


def test_record_then_replay_without_upstream(tmp_path: Path, start_proxy: Any) -> None:
    cassettes = tmp_path / "cassettes"
    with SimServer(faults=0.5, seed=3, fault_kinds="rate_limit") as sim:
        recorder = start_proxy(upstream=sim.url, cassettes="record", cassette_dir=cassettes)
        recorded = _recorded_session(recorder.url)
        recorded_dir = recorder.stop()
        sent = sim.stats()["requests"]
    # The simulator is gone: replay answers from the recordings alone.
    replayer = start_proxy(cassettes="replay", cassette_dir=cassettes)
    replayed = _recorded_session(replayer.url)
    # A request that was never recorded: the client is told how to fix it, and does not retry.
    a = anthropic.Anthropic(base_url=replayer.url, api_key=KEY, max_retries=2)
    with pytest.raises(anthropic.InternalServerError, match="re-record") as missed:
        a.messages.create(model="thorough", max_tokens=300, messages=MESSAGES)
    assert missed.value.response.headers["x-should-retry"] == "false"
    replayed_dir = replayer.stop()

    assert replayed == recorded
    first, second = exchange_rows(recorded_dir), exchange_rows(replayed_dir)
    assert len(first) == len(second) == sent > 3
    assert any(r["status"] == 429 for r in first)  # the faults are part of the recording
    fields = (
        "status",
        "attempt",
        "step",
        "input_tokens",
        "output_tokens",
        "tool_calls",
        "streamed",
        "task_id",
    )
    assert [[r[f] for f in fields] for r in first] == [[r[f] for f in fields] for r in second]
    columns = (
        "task_id",
        "exchanges",
        "retries",
        "model_calls",
        "tool_calls",
        "input_tokens",
        "output_tokens",
    )
    assert [[t[c] for c in columns] for t in task_rows(recorded_dir)] == [
        [t[c] for c in columns] for t in task_rows(replayed_dir)
    ]
    # Keys are forwarded, never written: not in cassettes, not in the run.
    for path in [*cassettes.rglob("*"), *recorded_dir.iterdir()]:
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
    # The miss reached no provider: no exchange row, but the manifest counts it.
    assert json.loads((replayed_dir / "manifest.json").read_text())["cassette_misses"] == 1


# --- wrap ---------------------------------------------------------------------------------------

TOOL_LOOP = """
import anthropic
client = anthropic.Anthropic()
tools = [{"name": "lookup", "description": "Look a record up",
          "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}]
messages = [{"role": "user", "content": "Check ACME's records."}]
calls = 0
while True:
    reply = client.messages.create(model="thorough", max_tokens=300, messages=messages, tools=tools)
    calls += 1
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
    uses = [b for b in reply.content if b.type == "tool_use"]
    if not uses:
        break
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses]})
print("model calls:", calls)
"""


def test_wrap_runs_a_command_and_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "wrapped"
    done = ampbench("wrap", "--upstream", "sim", "--out", str(out), "--", sys.executable, "-c", TOOL_LOOP)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "model calls: 3"  # stdout is the command's own
    assert "exch/request" in done.stderr and "thorough (simulated)" in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    (task,) = task_rows(out)
    assert int(task["exchanges"]) == int(task["model_calls"]) == manifest["sim_stats"]["requests"] == 3
    assert (task["main_exchanges"], task["side_exchanges"], task["non_model_exchanges"]) == ("3", "0", "0")
    assert task["main_model_calls"] == "3"
    # The summary splits each session's exchanges: main conversation + side + non-model.
    assert "Exchanges per session" in done.stderr and "= main conv." in done.stderr
    assert manifest["kind"] == "wrap" and manifest["command"][0] == sys.executable
    report = ampbench("report", str(out))
    assert report.returncode == 0 and "exch/request" in report.stdout

    # The exit code is the command's; a command that never calls a provider is told so.
    failing = ampbench(
        "wrap",
        "--upstream",
        "sim",
        "--out",
        str(tmp_path / "f"),
        "--",
        sys.executable,
        "-c",
        "raise SystemExit(3)",
    )
    assert failing.returncode == 3 and "no exchanges reached the proxy" in failing.stderr


def test_proxy_command_serves_until_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "served"
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["COLUMNS"] = "250"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "proxy",
            "--upstream",
            "sim",
            "--port",
            "0",
            "--out",
            str(out),
            "-v",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stderr is not None
        banner = server.stderr.readline()
        assert "listening on http://127.0.0.1:" in banner, banner
        url = banner.split("listening on ", 1)[1].split()[0]
        a = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0)
        # Claude Code's wire shape: a system message in the middle of the conversation.
        messages = [*MESSAGES, {"role": "system", "content": "Be brief."}]
        reply = a.messages.create(model="terse", max_tokens=100, messages=messages, tools=ANTHROPIC_TOOLS)
        assert reply.stop_reason == "tool_use"
        assert httpx2.get(url + "/_ampbench/stats").json()["exchanges"] == 1
        status, _, _ = raw_exchange(url, b"GET @127.0.0.1:9/internal HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 400
    finally:
        server.send_signal(signal.SIGINT)
        rest = server.communicate(timeout=30)[1]
    assert server.returncode == 0, rest
    assert "/v1/messages terse 200" in rest and f"results: {out}" in rest.replace("\n", "")
    assert "refused, not forwarded: GET request target '@127.0.0.1:9/internal'" in rest
    assert "note: 1 requests refused" in rest
    (task,) = task_rows(out)
    assert (task["exchanges"], task["model_calls"], task["tool_calls"]) == ("1", "1", "1")
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_bad_flags_are_one_line_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no upstream"):
        ProxyConfig().validate()
    with pytest.raises(UserError, match="unknown cassette mode 'tape'"):
        ProxyConfig(upstream="sim", cassettes="tape").validate()
    with pytest.raises(UserError, match="drop --upstream"):
        ProxyConfig(upstream="sim", cassettes="replay").validate()
    with pytest.raises(UserError, match="http"):
        resolve("ftp://example.test")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        ProxyConfig(upstream="sim", out=tmp_path / "full").validate()
    done = ampbench("proxy", "--upstream", "ftp://example.test", "--port", "0")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error:")
    done = ampbench("wrap", "--upstream", "sim")
    assert done.returncode == 2 and "no command to run" in done.stderr


# --- attribution rules ---------------------------------------------------------------------------


def test_user_requests_per_wire_format() -> None:
    def turns(body: dict[str, Any]) -> tuple[int, bool]:
        view = read_request(json.dumps(body).encode())
        return view.user_turns, view.opening

    tool_use = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}
    # Anthropic: tool results (even with a reminder beside them) answer a round; new text starts a request.
    assert turns({"messages": [{"role": "user", "content": "hi"}]}) == (1, True)
    assert turns(
        {"messages": [{"role": "user", "content": "hi"}, tool_use, {"role": "user", "content": [result]}]}
    ) == (1, False)
    mixed = {
        "role": "user",
        "content": [result, {"type": "text", "text": "<system-reminder>x</system-reminder>"}],
    }
    assert turns({"messages": [{"role": "user", "content": "hi"}, tool_use, mixed]})[0] == 1
    again = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "more"},
    ]
    assert turns({"messages": again}) == (2, False)
    # Chat: system messages are neutral, consecutive user messages are one request, tool messages none.
    chat = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "next"},
    ]
    assert turns({"messages": chat}) == (2, False)
    # Responses: a string input is one request; function_call_output items are tool results.
    assert turns({"input": "hello"}) == (1, True)
    items = [
        {"role": "user", "content": "a"},
        {"type": "function_call", "call_id": "c", "name": "x", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "ok"},
    ]
    assert turns({"input": items}) == (1, False)
    assert turns({"input": [*items, {"type": "message", "role": "user", "content": "b"}]}) == (2, False)


def _attribute(attributor: Attributor, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return attributor.begin(
        "POST", "/v1/messages", {"x-api-key": KEY, **(headers or {})}, json.dumps(body).encode()
    )


def test_sessions_retries_and_repeats() -> None:
    attributor = Attributor()
    first = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    }
    later = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},  # the cache breakpoint moved on
            {"role": "assistant", "content": "ok"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "more", "cache_control": {"type": "ephemeral"}}],
            },
        ],
    }
    a1 = _attribute(attributor, first)
    attributor.finish(a1, ok=False)
    a2 = _attribute(attributor, first)  # the same body after a failure: a retry
    attributor.finish(a2, ok=True)
    b = _attribute(attributor, later)
    attributor.finish(b, ok=True)
    assert (a1.session_id, a1.attempt, a1.step) == (a2.session_id, 1, 1)
    assert (a2.attempt, a2.repeat) == (2, 0)
    assert (b.session_id, b.step, b.user_turn, b.attempt) == (a1.session_id, 2, 2, 1)
    # The opening request again after it succeeded: the agent run starts over as repeat 1.
    c = _attribute(attributor, first)
    assert (c.session_id, c.repeat, c.attempt, c.step) == (a1.session_id, 1, 1, 1)
    # Another key, same first message: another session. A session header wins over the hash.
    other = attributor.begin(
        "POST", "/v1/messages", {"authorization": "Bearer other"}, json.dumps(first).encode()
    )
    assert other.session_id != a1.session_id and other.attribution == "hash"
    named = _attribute(attributor, first, {"x-ampbench-session": "mine"})
    assert (named.session_id, named.attribution) == ("mine", "x-ampbench-session")
    claude = _attribute(attributor, first, {"x-claude-code-session-id": "cc-1"})
    assert claude.session_id == "cc-1"
    # The key is only ever a salted, truncated hash.
    assert key_hash({"x-api-key": KEY}) == a1.key_hash and len(a1.key_hash) == 8 and a1.key_hash not in KEY


def test_responses_chains_follow_previous_response_id() -> None:
    attributor = Attributor()
    start = attributor.begin(
        "POST",
        "/v1/responses",
        {"authorization": f"Bearer {KEY}"},
        json.dumps({"model": "m", "input": "go"}).encode(),
    )
    attributor.finish(start, ok=True, response_body=b'{"id":"resp_abc123","object":"response"}')
    follow = attributor.begin(
        "POST",
        "/v1/responses",
        {"authorization": f"Bearer {KEY}"},
        json.dumps(
            {
                "model": "m",
                "previous_response_id": "resp_abc123",
                "input": [{"role": "user", "content": "again"}],
            }
        ).encode(),
    )
    assert (follow.session_id, follow.conversation, follow.user_turn) == (
        start.session_id,
        start.conversation,
        2,
    )


# --- Claude Code (opt-in) -------------------------------------------------------------------------


@pytest.mark.claude_code
def test_claude_code_through_wrap_is_counted_exactly(tmp_path: Path) -> None:
    claude = shutil.which("claude")
    if claude is None:
        if os.environ.get("AMPBENCH_CLAUDE_CODE") == "1":
            pytest.fail("AMPBENCH_CLAUDE_CODE=1 but `claude` is not on PATH")
        pytest.skip("the `claude` binary is not on PATH (npm install -g @anthropic-ai/claude-code)")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("hello\n")
    out = tmp_path / "run"
    env = {
        "ANTHROPIC_API_KEY": "sim",
        "ANTHROPIC_MODEL": "generic",
        "ANTHROPIC_SMALL_FAST_MODEL": "generic",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "generic",
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "generic",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "generic",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HOME": str(tmp_path / "home"),
        "PATH": os.environ.get("PATH", ""),
    }
    done = subprocess.run(
        [sys.executable, "-m", "harness", "wrap", "--upstream", "sim", "--out", str(out), "--", claude,
         "-p", "List the files in the current directory", "--allowedTools", "Bash", "--output-format", "json"],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    manifest = json.loads((out / "manifest.json").read_text())
    rows = exchange_rows(out)
    api = [r for r in rows if r["endpoint"].startswith("/v1/")]
    # Every request the simulator counted is a row; the rest are requests outside the API paths
    # (Claude Code's HEAD / connectivity check), which the simulator answers 501 without counting.
    assert len(api) == manifest["sim_stats"]["requests"] > 0
    assert all(r["status"] == 501 and r["method"] == "HEAD" for r in rows if r not in api)
    (task,) = task_rows(out)  # one `claude -p` is one request
    assert int(task["exchanges"]) == len(rows) and int(task["user_turns"]) == 1
    # The session's exchanges split into its main conversation, side calls (the session title, on the
    # small model) and requests that generate nothing (the HEAD / probe, count_tokens).
    split = [int(task[c]) for c in BREAKDOWN]
    assert sum(split) == int(task["exchanges"])
    assert int(task["non_model_exchanges"]) == sum(1 for r in rows if not r["generation"])
    # num_turns is the model calls of the main conversation; Claude Code does not count side calls.
    assert int(task["main_model_calls"]) == result["num_turns"]
    assert int(task["main_model_calls"]) + int(task["side_model_calls"]) == int(task["model_calls"])
    calls = [r for r in rows if r["model_call"]]
    main = [
        r
        for r in calls
        if r["conversation"] == task["main_conversation"] and r["request_model"] == task["model"]
    ]
    assert len(main) == result["num_turns"]
    # `wrap` prints the split.
    assert "Exchanges per session" in done.stderr
    # Its `usage` is the main conversation's sums; modelUsage covers every model call.
    usage = result["usage"]
    assert sum(r["output_tokens"] for r in main) == usage["output_tokens"]
    assert sum(r["cache_read_input_tokens"] for r in main) == usage["cache_read_input_tokens"]
    assert sum(r["input_tokens"] for r in main) == (
        usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    )
    totals = result["modelUsage"].values()
    assert sum(r["output_tokens"] for r in calls) == sum(m["outputTokens"] for m in totals)
    assert sum(r["input_tokens"] for r in calls) == sum(
        m["inputTokens"] + m["cacheReadInputTokens"] + m["cacheCreationInputTokens"] for m in totals
    )
