"""Provider-neutral conversation types.

Every client turns these into its own wire format and every response parser
turns a provider's wire format back into a `ModelTurn`. The `to_dict` /
`from_dict` pairs give each type one JSON shape, used in result files and
fixtures.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["agent", "judge"]


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: name, description and a JSON schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One tool invocation requested by the model."""

    id: str
    name: str
    arguments: dict[str, Any]
    # The argument string exactly as the provider sent it; kept so a replayed
    # history is byte-identical even when the model emitted odd JSON.
    raw_arguments: str | None = None

    @property
    def arguments_json(self) -> str:
        if self.raw_arguments is not None:
            return self.raw_arguments
        return json.dumps(self.arguments, sort_keys=True)


@dataclass(frozen=True)
class ToolResult:
    """What a tool returned for one `ToolCall`."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass
class Usage:
    """Token usage of one exchange, normalised to OpenTelemetry GenAI names.

    `input_tokens` includes cached tokens and `output_tokens` includes
    reasoning tokens, whatever the provider's own convention. A count the
    provider did not report is None, never 0. `raw` keeps the provider's
    own usage object untouched.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    raw: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelTurn:
    """One response of a model, parsed from the provider's wire format."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Reasoning text the provider returned to the client (thinking blocks,
    # reasoning summaries, reasoning_content): what a distiller could harvest.
    reasoning: str = ""
    usage: Usage | None = None
    stop_reason: str | None = None
    model: str | None = None
    # An error the provider reported inside a 200 response (an SSE `error`
    # event, an error chunk) or in a non-2xx body.
    error: str | None = None
    # The provider's own output blocks/items, so that the same client can send
    # the turn back verbatim (thinking signatures, reasoning items).
    provider_content: list[dict[str, Any]] | None = None

    @property
    def visible_reasoning_chars(self) -> int:
        return len(self.reasoning)


@dataclass(frozen=True)
class UserMessage:
    text: str
    role: Literal["user"] = "user"


@dataclass(frozen=True)
class AssistantMessage:
    turn: ModelTurn
    role: Literal["assistant"] = "assistant"


@dataclass(frozen=True)
class ToolResultsMessage:
    results: tuple[ToolResult, ...]
    role: Literal["tool"] = "tool"


Message = UserMessage | AssistantMessage | ToolResultsMessage


@dataclass
class GenerateOptions:
    """Per-call generation settings shared by every client."""

    max_tokens: int = 1024
    temperature: float | None = None
    stream: bool = False
    # Anthropic extended thinking budget; None leaves thinking off.
    thinking_budget: int | None = None
    # OpenAI reasoning effort for reasoning models ("low", "medium", "high").
    reasoning_effort: str | None = None


def count_user_turns(messages: list[Message]) -> int:
    return sum(1 for m in messages if isinstance(m, UserMessage))
