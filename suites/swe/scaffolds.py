"""The two agent scaffolds of the swe suite, chosen with `--scaffold`.

* `tools`: the provider's native tool calling with `bash`, `str_replace_editor`
  and `submit`. A response without a tool call gets a short reminder back (a
  format error, as in mini-swe-agent's tool-calling mode); `submit` ends the task.
* `bash-only`: mini-swe-agent's text protocol. No tools are offered; every
  response must hold exactly one fenced ```bash block, which is run; zero or
  several blocks get format-error feedback instead (still an exchange and a
  model call, counted in `format_errors`). The output goes back as a user
  message, and a command whose output starts with the submit sentinel ends
  the task.

Both satisfy `harness.loop.Scaffold` structurally.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.conversation import Message, ModelTurn, ToolCall, ToolResult, ToolResultsMessage, UserMessage
from harness.loop import Actions

__all__ = ["SCAFFOLDS", "BashOnlyScaffold", "ToolsScaffold", "bash_blocks"]

SCAFFOLDS = ("tools", "bash-only")

# A fence opening with `bash` (or `sh`/`shell`, which models write too) on its own
# line, up to the next closing fence. Non-greedy, so two blocks stay two.
_BASH_BLOCK = re.compile(r"```(?:bash|sh|shell)[ \t]*\r?\n(.*?)```", re.DOTALL)


def bash_blocks(text: str) -> list[str]:
    """The commands of every fenced bash block in a response, in order."""
    return [block.strip("\n") for block in _BASH_BLOCK.findall(text or "")]


@dataclass
class ToolsScaffold:
    """Native tool calls; a turn without one is a format error with a reminder."""

    no_tool_call_feedback: str

    def actions(self, turn: ModelTurn) -> Actions:
        if not turn.tool_calls:
            return Actions(feedback=self.no_tool_call_feedback)
        # Never `done`: only submit (the environment's `finished`) or a limit ends the task.
        return Actions(calls=list(turn.tool_calls))

    def observe(self, calls: list[ToolCall], results: list[ToolResult]) -> Message:
        return ToolResultsMessage(tuple(results))


@dataclass
class BashOnlyScaffold:
    """One ```bash block per response, parsed from the text; output back as a user message."""

    format_error: Callable[[int], str]
    """The config's format-error template, given the number of blocks found."""
    _calls: int = field(default=0, init=False)

    def actions(self, turn: ModelTurn) -> Actions:
        blocks = bash_blocks(turn.text)
        if len(blocks) != 1:
            return Actions(feedback=self.format_error(len(blocks)))
        self._calls += 1
        # The id never reaches the provider (the output goes back as text); it
        # only names the call in tool_calls.jsonl.
        return Actions(calls=[ToolCall(f"bash-{self._calls}", "bash", {"command": blocks[0]})])

    def observe(self, calls: list[ToolCall], results: list[ToolResult]) -> Message:
        return UserMessage("\n\n".join(result.content for result in results))
