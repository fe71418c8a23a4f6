"""The three provider wire formats: request builders and the one parser of each format's responses.

* `harness.wire.anthropic`: Anthropic Messages (`/v1/messages`).
* `harness.wire.openai_chat`: OpenAI Chat Completions (`/chat/completions`),
  with the dialects of OpenAI-compatible servers.
* `harness.wire.openai_responses`: OpenAI Responses (`/responses`).

Pure functions over bytes and `harness.conversation` types: no SDK, no HTTP
client, nothing else of the harness. `parse_exchange` is the only place that
maps an endpoint path to its parser, so the live ledger, cassette replay, the
proxy and ingest all read responses alike; the clients build their requests
with the same modules and send them through the SDKs.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.conversation import ModelTurn
from harness.wire import anthropic, openai_chat, openai_responses
from harness.wire._common import ModelTarget, looks_like_sse

__all__ = ["ModelTarget", "Parser", "looks_like_sse", "parse_exchange", "parser_for", "wire_for_path"]

Parser = Callable[..., ModelTurn]

_PARSERS: dict[str, Parser] = {
    "anthropic": anthropic.parse_response,
    "openai-chat": openai_chat.parse_response,
    "openai-responses": openai_responses.parse_response,
}


def wire_for_path(path: str) -> str | None:
    """The wire format an endpoint speaks, from its URL path."""
    path = path.rstrip("/")
    if path.endswith("/messages/count_tokens"):
        return None
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith("/chat/completions"):
        return "openai-chat"
    if path.endswith("/responses"):
        return "openai-responses"
    return None


def parser_for(wire: str) -> Parser:
    """The response parser of a wire format; ValueError for an unknown one."""
    try:
        return _PARSERS[wire]
    except KeyError:
        raise ValueError(f"no parser for wire format {wire!r}") from None


def parse_exchange(path: str, body: bytes, *, content_type: str = "", status: int = 200) -> ModelTurn | None:
    """Parse a decoded response body of any supported endpoint; None for other endpoints."""
    wire = wire_for_path(path)
    if wire is None or not body:
        return None
    streamed = "text/event-stream" in content_type or body.lstrip().startswith((b"event:", b"data:"))
    return parser_for(wire)(body, streamed=streamed, status=status)
