"""Which parser reads which endpoint's response.

One parser per provider response format lives in its client module; this
table is the only place that maps an endpoint path to it, so the live
transport, cassette replay, the proxy and ingest all read responses alike.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.conversation import ModelTurn

Parser = Callable[..., ModelTurn]


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
    # Imported lazily: the provider modules import their SDKs.
    if wire == "anthropic":
        from harness.clients.anthropic import parse_response
    elif wire == "openai-chat":
        from harness.clients.openai_chat import parse_response
    elif wire == "openai-responses":
        from harness.clients.openai_responses import parse_response
    else:
        raise ValueError(f"no parser for wire format {wire!r}")
    return parse_response


def parse_exchange(path: str, body: bytes, *, content_type: str = "", status: int = 200) -> ModelTurn | None:
    """Parse a decoded response body of any supported endpoint; None for other endpoints."""
    wire = wire_for_path(path)
    if wire is None or not body:
        return None
    streamed = "text/event-stream" in content_type or body.lstrip().startswith((b"event:", b"data:"))
    return parser_for(wire)(body, streamed=streamed, status=status)
