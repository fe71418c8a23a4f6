"""The provider-neutral view of one request and one reply.

Each wire module parses its request body into a `View` and renders a `Reply`
back in its own format, so the simulated agents in `profiles.py` never see a
wire format. Token accounting lives here too, so that the three formats
report the same numbers for the same conversation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

ViewRole = Literal["user", "assistant", "tool"]

# An image or document block counts as this many characters (~1,600 tokens),
# so base64 payloads do not inflate the simulated prompt size.
ATTACHMENT_CHARS = 6400


@dataclass(frozen=True)
class ToolDef:
    """A function tool the client offered: name, description, JSON schema of its arguments."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class CallIn:
    """A tool call the assistant made earlier in the conversation."""

    id: str
    name: str
    arguments: Any
    """Parsed arguments (a dict normally; the raw string when it was not JSON)."""


@dataclass(frozen=True)
class ResultIn:
    """A tool result the client sent back."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass
class ViewMessage:
    """One conversation message; consecutive tool results form one `tool` message."""

    role: ViewRole
    text: str = ""
    tool_calls: list[CallIn] = field(default_factory=list)
    tool_results: list[ResultIn] = field(default_factory=list)
    reasoning: str = ""
    attachments: int = 0
    cache_marked: bool = False
    """An Anthropic `cache_control` breakpoint sits on this message."""

    @property
    def chars(self) -> int:
        calls = sum(len(c.name) + len(canonical_json(c.arguments)) for c in self.tool_calls)
        results = sum(len(r.content) for r in self.tool_results)
        return len(self.text) + len(self.reasoning) + calls + results + self.attachments * ATTACHMENT_CHARS


@dataclass
class View:
    """What a simulated agent needs to know about one request."""

    wire: str
    model: str
    system: str = ""
    messages: list[ViewMessage] = field(default_factory=list)
    tools: list[ToolDef] = field(default_factory=list)
    tool_choice: str = "auto"
    """`auto`, `none`, `required`, or the name of the one tool the client forces."""
    stream: bool = False
    include_usage: bool = False
    """OpenAI chat only: `stream_options.include_usage`."""
    max_tokens: int | None = None
    repeat: int = 0
    """The `x-ampbench-repeat` header: mixed into behaviour choices so repeats differ."""
    tools_cache_marked: bool = False
    system_cache_marked: bool = False
    echo: dict[str, Any] = field(default_factory=dict)
    """Request fields the response repeats verbatim (the Responses API echoes its settings)."""

    # --- conversation state the profiles decide from -------------------------------------

    @property
    def offered_tools(self) -> list[ToolDef]:
        """The tools the agent may call, after `tool_choice`."""
        if self.tool_choice == "none":
            return []
        if self.tool_choice not in ("auto", "required"):
            return [t for t in self.tools if t.name == self.tool_choice] or self.tools
        return self.tools

    def last_user_index(self) -> int:
        """Position of the last user message in `messages`, -1 if there is none."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "user":
                return i
        return -1

    @property
    def user_turn(self) -> int:
        """1-based number of the user message being answered (0 when there is none)."""
        return sum(1 for m in self.messages if m.role == "user")

    @property
    def last_user_text(self) -> str:
        i = self.last_user_index()
        return self.messages[i].text if i >= 0 else ""

    @property
    def rounds_since_user(self) -> int:
        """Assistant responses already given to the current user message: its tool rounds so far."""
        start = self.last_user_index() + 1
        return sum(1 for m in self.messages[start:] if m.role == "assistant")

    def earlier_calls(self) -> list[CallIn]:
        """Every tool call the assistant made in the whole conversation."""
        return [c for m in self.messages if m.role == "assistant" for c in m.tool_calls]

    def results_since_user(self) -> list[ResultIn]:
        start = self.last_user_index() + 1
        return [r for m in self.messages[start:] for r in m.tool_results]

    def behaviour_key(self) -> bytes:
        """Seed for behaviour choices: stable across the tool rounds of one user message.

        It covers the system text and the conversation up to the user message
        being answered, plus the repeat number, so that one user turn plays
        out consistently while repeats and other turns vary.
        """
        upto = self.messages[: self.last_user_index() + 1]
        state = [self.system, [[m.role, m.text, [[c.name, c.arguments] for c in m.tool_calls]] for m in upto]]
        return digest(f"repeat={self.repeat}".encode(), canonical_json(state).encode())

    # --- token accounting ----------------------------------------------------------------

    def tools_chars(self) -> int:
        return sum(
            len(canonical_json({"name": t.name, "description": t.description, "schema": t.schema}))
            for t in self.tools
        )

    def input_chars(self) -> int:
        return self.tools_chars() + len(self.system) + sum(m.chars for m in self.messages)

    def prefix_chars(self) -> int:
        """Characters before the last user/tool message: what a prompt cache would already hold."""
        last = -1
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role in ("user", "tool"):
                last = i
                break
        if last <= 0:
            return 0  # no history yet: nothing was cached by an earlier request
        return self.tools_chars() + len(self.system) + sum(m.chars for m in self.messages[:last])

    def breakpoint_chars(self) -> int:
        """Characters up to the end of the last Anthropic `cache_control` breakpoint (0 if none)."""
        position = self.tools_chars()
        end = position if self.tools_cache_marked else 0
        position += len(self.system)
        if self.system_cache_marked:
            end = position
        for m in self.messages:
            position += m.chars
            if m.cache_marked:
                end = position
        return end


@dataclass(frozen=True)
class ReplyCall:
    """A tool call a simulated agent makes."""

    name: str
    arguments: dict[str, Any]


@dataclass
class Reply:
    """What a simulated agent answers, before any wire format."""

    text: str = ""
    tool_calls: list[ReplyCall] = field(default_factory=list)
    reasoning: str = ""
    """Visible reasoning: thinking blocks, reasoning summaries or `reasoning_content`."""

    @property
    def stop(self) -> Literal["tool_use", "end_turn"]:
        return "tool_use" if self.tool_calls else "end_turn"


@dataclass(frozen=True)
class Tokens:
    """Token counts of one exchange, before any provider's naming.

    `input` includes cache reads and cache writes; `output` includes reasoning.
    """

    input: int
    cache_read: int
    cache_creation: int
    output: int
    reasoning: int

    @property
    def uncached_input(self) -> int:
        """Anthropic's `input_tokens`: neither read from nor written to the cache."""
        return self.input - self.cache_read - self.cache_creation


def tokens_of(chars: int) -> int:
    return math.ceil(chars / 4)


def count_tokens(view: View, reply: Reply | None = None) -> Tokens:
    """Deterministic usage: about four characters per token, with simulated prompt caching."""
    total = tokens_of(view.input_chars())
    cache_read = min(total, tokens_of(view.prefix_chars()))
    marked = min(total, tokens_of(view.breakpoint_chars()))
    cache_creation = max(0, marked - cache_read)
    if reply is None:
        return Tokens(total, cache_read, cache_creation, 0, 0)
    reasoning = tokens_of(len(reply.reasoning))
    visible = len(reply.text) + sum(len(c.name) + len(compact_json(c.arguments)) for c in reply.tool_calls)
    output = max(1, tokens_of(visible) + reasoning)
    return Tokens(total, cache_read, cache_creation, output, reasoning)


# --- hashing and ids -----------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Key-order-independent JSON: equal bodies hash equally whatever the client's dict order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact_json(value: Any) -> str:
    """JSON as the providers emit tool arguments: compact, keys in schema order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def digest(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        # Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def pick(key: bytes, label: str, n: int) -> int:
    """A deterministic choice in range(n), independent for each label."""
    if n <= 1:
        return 0
    return int.from_bytes(digest(key, label.encode())[:8], "big") % n


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def make_id(key: bytes, label: str, length: int, *, alphabet: str = _ALNUM) -> str:
    """An id-like string derived from `key`: same request, same ids."""
    number = int.from_bytes(digest(key, label.encode()) + digest(key, label.encode(), b"2"), "big")
    chars = []
    for _ in range(length):
        number, rem = divmod(number, len(alphabet))
        chars.append(alphabet[rem])
    return "".join(chars)


def make_hex_id(key: bytes, label: str, length: int) -> str:
    return make_id(key, label, length, alphabet="0123456789abcdef")


def make_signature(key: bytes, label: str) -> str:
    """An opaque base64 blob shaped like a thinking-block signature."""
    raw = b"".join(digest(key, label.encode(), bytes([i])) for i in range(6))
    return base64.b64encode(raw).decode()


def created_at(key: bytes) -> int:
    """A fixed Unix timestamp derived from the request, so responses stay byte-identical."""
    return 1_750_000_000 + int.from_bytes(key[:4], "big") % 10_000_000
