"""What the three wire formats share: SSE framing, error bodies, token counts, the model target.

Kept apart from the format modules so that each of them holds exactly one
parser of its own format and none re-implements event-stream framing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

_SSE_STARTS = (b"event:", b"data:", b":", b"id:", b"retry:")


class ModelTarget(Protocol):
    """What a request builder needs to know of the model it addresses.

    `harness.clients.ModelSpec` is one; the wire formats never import the clients.
    """

    @property
    def model(self) -> str:
        """The model name sent to the provider."""
        ...

    @property
    def provider(self) -> str:
        """Provider name (`openai`, `compat`, ...); the Chat Completions dialect depends on it."""
        ...

    @property
    def empty_content_for_tool_calls(self) -> bool:
        """Send `content: ""` instead of null beside tool calls."""
        ...


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: its `event:` name (may be empty) and its joined `data:` lines."""

    event: str
    data: str

    def json(self) -> Any:
        """The data as JSON, or None when it is not valid JSON (a cut-off event, `[DONE]`)."""
        try:
            return json.loads(self.data)
        except ValueError:
            return None


def looks_like_sse(body: bytes) -> bool:
    """True when a body opens like an event stream (a field line or a `:` comment)."""
    return body.lstrip().startswith(_SSE_STARTS)


def is_stream(body: bytes, streamed: bool) -> bool:
    """Decide by the body itself, using the caller's hint only when the body cannot tell.

    Recorders drop headers, error answers to streaming requests come back as JSON,
    and OpenRouter opens its streams with `: comment` lines, so the flag alone lies.
    """
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        return False
    if looks_like_sse(body):
        return True
    return streamed


def iter_sse(body: bytes) -> Iterator[SSEEvent]:
    """Split an event-stream body into events; tolerant of CRLF and of a cut-off last event."""
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    event = ""
    data: list[str] = []
    seen_field = False
    for line in text.split("\n"):
        if line == "":
            if seen_field and data:
                yield SSEEvent(event, "\n".join(data))
            event, data, seen_field = "", [], False
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        seen_field = True
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if seen_field and data:
        # The last event of a cut-off body; a half-written JSON payload fails to parse later.
        yield SSEEvent(event, "\n".join(data))


def load_json(body: bytes) -> Any:
    """Parse a JSON body; None when it is not JSON (truncated, HTML error page...)."""
    try:
        return json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return None


def error_text(payload: Any) -> str | None:
    """`<type>: <message>` from the error shapes providers use, or None if `payload` is no error.

    Handles `{"type":"error","error":{...}}` (Anthropic), `{"error":{...}}`
    (OpenAI and compatible servers, Groq's in-stream `event: error`), a bare
    `{"type":"error","code":...,"message":...}` (Responses stream `error`
    events) and `{"error":"text"}`.
    """
    if not isinstance(payload, dict):
        return None
    err = payload.get("error")
    if isinstance(err, str) and err:
        return f"error: {err}"
    if isinstance(err, dict) and err:
        kind = err.get("type") or err.get("code") or payload.get("type") or "error"
        message = err.get("message") or err.get("msg") or json.dumps(err, sort_keys=True)
        return f"{kind}: {message}"
    if payload.get("type") == "error" and ("message" in payload or "code" in payload):
        kind = payload.get("code") or "error"
        message = payload.get("message")
        return f"{kind}: {message}" if message else str(kind)
    return None


def status_error(status: int, payload: Any, body: bytes) -> str:
    """The error of a non-2xx response: the provider's own words when the body has them."""
    found = error_text(payload)
    if found:
        return found
    snippet = body.decode("utf-8", errors="replace").strip().replace("\n", " ")[:200]
    return f"http_{status}: {snippet}" if snippet else f"http_{status}"


def as_int(value: Any) -> int | None:
    """A token count as int; None when absent or not a number (never 0 for missing)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """Tool arguments as a dict; odd JSON (empty, a list, cut off) gives {} and the raw string is kept apart."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
