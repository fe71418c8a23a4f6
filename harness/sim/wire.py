"""What the three wire modules share: the `Wire` seam, errors, SSE framing.

A wire module turns a request body into a `View` and a `Reply` into a
response body (JSON or a list of SSE frames), and knows its provider's error
shapes. The server picks the module by URL path and never looks inside.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from harness.sim.view import Reply, Tokens, View

ErrorKind = Literal["invalid_request", "not_found", "rate_limit", "server_error", "overloaded"]


class WireError(Exception):
    """A request the provider would reject; rendered in that provider's error shape."""

    def __init__(self, kind: ErrorKind, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param


@dataclass(frozen=True)
class RenderContext:
    """Everything a renderer needs besides the reply itself."""

    key: bytes
    """Hash of the request (body + repeat): every id and timestamp derives from it."""
    tokens: Tokens


class Wire(Protocol):
    """One provider's request and response format."""

    name: str

    def parse(self, body: Any) -> View:
        """The neutral view of a request body; raise WireError for what the provider would reject."""
        ...

    def render(self, view: View, reply: Reply, ctx: RenderContext) -> dict[str, Any]:
        """The non-streamed JSON response."""
        ...

    def render_stream(self, view: View, reply: Reply, ctx: RenderContext) -> list[bytes]:
        """The streamed response, one SSE frame per element."""
        ...

    def not_found_message(self, model: str) -> str:
        """The provider's message for an unknown model."""
        ...

    def error(
        self, kind: ErrorKind, message: str, *, param: str | None, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of an error in this provider's shape."""
        ...


def dumps(value: Any) -> str:
    """JSON as the providers send it: compact, UTF-8, keys in insertion order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE frame; `data` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def text_pieces(text: str, words: int = 3) -> list[str]:
    """Split text into streaming deltas of a few words each; the pieces rejoin to the exact text."""
    tokens = re.findall(r"\S*\s*", text)
    tokens = [t for t in tokens if t]
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def json_pieces(text: str, size: int = 12) -> list[str]:
    """Split a JSON string into fixed-size fragments, as providers stream tool arguments."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def require_dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise WireError("invalid_request", "The request body must be a JSON object.")
    return body


def text_of_parts(content: Any, text_types: tuple[str, ...]) -> tuple[str, int]:
    """Join the text of a content value (a string or a list of parts); also count attachments."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise WireError("invalid_request", "content must be a string or an array of content parts.")
    texts: list[str] = []
    attachments = 0
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            if part.get("type") in text_types and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                attachments += 1
    return "\n".join(texts), attachments


def parse_arguments(raw: Any) -> Any:
    """Tool-call arguments sent back as a JSON string (OpenAI) or an object (Anthropic)."""
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return raw
    return raw if raw is not None else {}
