"""Who an exchange belongs to, read from the request alone: session, conversation, user request.

A proxy sees HTTP requests, not agent runs, so it reconstructs them:

- **session** (one `tasks.csv` row): the value of a session header when the
  client sends one (`x-ampbench-session`, or Claude Code's own
  `x-claude-code-session-id`); otherwise a hash of the API key and the
  conversation's first user message, so one agent run is one session.
- **conversation**: a hash of the first user message. A session can hold
  several (Claude Code's title request beside its main loop); the one of its
  main model with the most model calls is its main conversation, whose model
  calls are the agent's own turns (`harness.proxy.sessions`).
- **user request**: inside a conversation, a user message that is not a tool
  result starts one. `user_turn` of an exchange is how many the request holds.
- **retry**: the same request body (canonical JSON, same path) seen again in
  the session after an attempt that failed. The same *opening* request sent
  again after it succeeded is the agent run starting over: a new `repeat`.

Keys are never kept: only a salted hash truncated to 8 hex digits (32 bits,
so it cannot be reversed to a key) tells sessions of different keys apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.cassettes import canonical_body
from harness.wire import wire_for_path

SESSION_HEADER = "x-ampbench-session"
# Session ids clients send on their own; checked after ours, in this order.
CLIENT_SESSION_HEADERS: tuple[str, ...] = ("x-claude-code-session-id",)
DEFAULT_SESSION_HEADERS: tuple[str, ...] = (SESSION_HEADER, *CLIENT_SESSION_HEADERS)
_KEY_HEADERS = ("x-api-key", "authorization", "api-key", "x-goog-api-key")
_KEY_SALT = b"ampbench-proxy/key/v1\x00"
_LABEL_CHARS = 60
# Responses API: the id of the response a later request continues with `previous_response_id`.
_RESPONSE_ID = re.compile(rb'"id"\s*:\s*"(resp_[A-Za-z0-9_-]+)"')
# Item kinds of a conversation.
USER, TOOL, ASSISTANT, OTHER = "user", "tool", "assistant", "other"
_TOOL_OUTPUT_BLOCKS = frozenset({"tool_result", "function_call_output"})
_NO_CONVERSATION = "none"


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def key_hash(headers: Mapping[str, str]) -> str | None:
    """A salted, truncated hash of the request's API key (None without one); never the key."""
    key = api_key(headers)
    return _sha(_KEY_SALT, key.encode())[:8] if key else None


def api_key(headers: Mapping[str, str]) -> str | None:
    """The key itself, only so that cassettes can scrub it; the caller must not store it."""
    for name in _KEY_HEADERS:
        value = (headers.get(name) or "").strip()
        if name == "authorization" and value[:7].lower() == "bearer ":
            value = value[7:].strip()
        if value:
            return value
    return None


def response_id(body: bytes) -> str | None:
    """The Responses API id in a response body or stream (its first `resp_` id), for chaining."""
    match = _RESPONSE_ID.search(body[:4096])
    return match.group(1).decode() if match else None


# --- what a request body says ------------------------------------------------------------------


def _kind(item: Any) -> str:
    """user / tool / assistant / other for one message (any wire) or Responses input item."""
    if not isinstance(item, dict):
        return OTHER
    kind = item.get("type")
    if isinstance(kind, str) and kind != "message":
        # Responses input items: tool outputs answer a round; calls and reasoning are model output.
        if kind.endswith("_output"):
            return TOOL
        return ASSISTANT if kind.endswith("_call") or kind == "reasoning" else OTHER
    role = item.get("role")
    if role == "user":
        content = item.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") in _TOOL_OUTPUT_BLOCKS for b in content
        ):
            # A message carrying tool results answers a tool round, even with text beside them
            # (Claude Code adds <system-reminder> blocks to tool results).
            return TOOL
        return USER
    if role in ("assistant", "model"):
        return ASSISTANT
    if role in ("tool", "function"):
        return TOOL
    return OTHER


def _content_text(content: Any) -> str:
    """A message's content in a form that ignores cache breakpoints moving between requests."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return json.dumps(content, sort_keys=True)
    parts: list[str] = []
    for block in content:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif isinstance(block, dict):
            rest = {k: v for k, v in block.items() if k != "cache_control"}
            parts.append(json.dumps(rest, sort_keys=True, separators=(",", ":")))
        else:
            parts.append(str(block))
    return "\n".join(parts)


@dataclass(frozen=True)
class RequestView:
    """The attribution-relevant facts of one request body."""

    model: str | None = None
    first_user: str | None = None
    """Text of the conversation's first user message; None when the request holds none."""
    user_turns: int = 0
    """User requests in the body: runs of user messages after the start, an assistant or a tool round."""
    opening: bool = False
    """Only user (and system) messages: the first request of a conversation."""
    previous_response_id: str | None = None
    streamed: bool = False
    tools: int = 0
    """Tools the request offers: an agent loop's requests do, title or summary requests do not."""


def read_request(body: bytes) -> RequestView:
    """Attribution facts of a request body (Messages, Chat Completions, Responses); empty for others."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return RequestView()
    model = data.get("model") if isinstance(data.get("model"), str) else None
    items: Any = data.get("messages")
    if items is None:
        items = data.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
    if not isinstance(items, list):
        items = []
    kinds = [_kind(i) for i in items]
    turns = 0
    previous = None
    first_user: str | None = None
    for item, kind in zip(items, kinds, strict=True):
        if kind == OTHER:
            continue
        if kind == USER:
            if previous != USER:
                turns += 1
            if first_user is None:
                first_user = _content_text(item.get("content"))
        previous = kind
    previous_id = data.get("previous_response_id")
    return RequestView(
        model=model,
        first_user=first_user,
        user_turns=turns,
        opening=turns > 0 and not previous_id and all(k in (USER, OTHER) for k in kinds),
        previous_response_id=previous_id if isinstance(previous_id, str) else None,
        streamed=data.get("stream") is True,
        tools=len(data["tools"]) if isinstance(data.get("tools"), list) else 0,
    )


# --- sessions ------------------------------------------------------------------------------------


@dataclass
class Attribution:
    """Where one exchange goes: the fields of its ledger row and of its cassette."""

    session_id: str
    """tasks.csv `task_id`."""
    repeat: int
    step: int
    attempt: int
    user_turn: int
    conversation: str
    """Hash of the first user message (12 hex digits), or `none`."""
    attribution: str
    """The session header that named the session, `hash`, or `none` (no conversation, no header)."""
    key_hash: str | None
    request_model: str | None
    generation: bool
    """A model endpoint (Messages, Chat Completions, Responses), as opposed to count_tokens, listings..."""
    body_key: str
    offered_tools: int = 0
    """Tools the request offers (ranks a session's conversations: see `sessions.main_conversation`)."""
    label: str = ""


@dataclass
class _Run:
    """One repeat of a session: its step counter and the request bodies it has seen."""

    repeat: int
    steps: int = 0
    # canonical body hash -> [times seen, outcome of the last attempt: True ok / False failed / None in flight]
    bodies: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class _Chain:
    """What a stored Responses id continues: for `previous_response_id` requests."""

    session_id: str
    conversation: str
    user_turns: int
    attribution: str
    label: str


class Attributor:
    """Assigns sessions, repeats, steps, attempts and user turns; one per proxy, used from one event loop."""

    def __init__(self, session_headers: Iterable[str] = DEFAULT_SESSION_HEADERS) -> None:
        self.session_headers = tuple(h.lower() for h in session_headers)
        self._runs: dict[str, _Run] = {}
        self._chains: dict[str, _Chain] = {}
        self.labels: dict[str, str] = {}
        """Session id -> a preview of its first user message, for people reading tasks.csv."""

    def begin(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Attribution:
        view = read_request(body)
        keyed = key_hash(headers)
        generation = method == "POST" and wire_for_path(path) is not None

        chain = self._chains.get(view.previous_response_id or "")
        if chain is not None:
            # A continued response: its input holds only the new items, the conversation began earlier.
            conversation, label = chain.conversation, chain.label
        elif view.first_user is not None:
            conversation = _sha(view.first_user.encode())[:12]
            label = " ".join(view.first_user.split())[:_LABEL_CHARS]
        elif view.previous_response_id:
            conversation, label = _sha(view.previous_response_id.encode())[:12], ""
        else:
            conversation, label = _NO_CONVERSATION, ""
        user_turn = view.user_turns + (chain.user_turns if chain is not None else 0)

        named = next(
            ((h, headers[h].strip()) for h in self.session_headers if (headers.get(h) or "").strip()), None
        )
        if named is not None:
            source, session_id = named[0], named[1][:200]
        elif chain is not None:
            source, session_id = chain.attribution, chain.session_id
        elif conversation != _NO_CONVERSATION:
            source = "hash"
            session_id = "s" + _sha(_KEY_SALT, (keyed or "").encode(), conversation.encode())[:11]
        else:
            source, session_id = "none", f"other-{keyed or 'nokey'}"
        if label and session_id not in self.labels:
            self.labels[session_id] = label

        body_key = _sha(method.encode(), path.rstrip("/").encode(), canonical_body(body).encode())
        run = self._runs.get(session_id)
        if run is None:
            run = self._runs[session_id] = _Run(repeat=0)
        seen = run.bodies.get(body_key)
        if generation and view.opening and seen is not None and seen[1] is True:
            # The opening request again after it succeeded: the agent run starts over.
            run = self._runs[session_id] = _Run(repeat=run.repeat + 1)
            seen = None
        if seen is None:
            seen = run.bodies[body_key] = [0, None]
            if generation:
                run.steps += 1
        seen[0] += 1
        seen[1] = None
        return Attribution(
            session_id=session_id,
            repeat=run.repeat,
            step=run.steps,
            attempt=seen[0],
            user_turn=user_turn,
            conversation=conversation,
            attribution=source,
            key_hash=keyed,
            request_model=view.model,
            generation=generation,
            body_key=body_key,
            offered_tools=view.tools,
            label=label,
        )

    def finish(self, attribution: Attribution, *, ok: bool, response_body: bytes = b"") -> None:
        """Note how the attempt ended (retry / restart detection) and remember Responses ids."""
        run = self._runs.get(attribution.session_id)
        if run is not None and run.repeat == attribution.repeat:
            seen = run.bodies.get(attribution.body_key)
            if seen is not None:
                seen[1] = ok
        if ok and attribution.generation:
            rid = response_id(response_body)
            if rid is not None:
                self._chains[rid] = _Chain(
                    attribution.session_id,
                    attribution.conversation,
                    attribution.user_turn,
                    attribution.attribution,
                    attribution.label,
                )
