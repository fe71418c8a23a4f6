"""The agent loop: one task, one client, one tool environment.

`run_task` sends the task's user messages one at a time; for each it asks
the model, runs the tool calls the model requested, and asks again until the
model answers without tool calls. Budgets are checked in one place, before
each model call; a stop is a typed exception carrying its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness import context
from harness.conversation import (
    AssistantMessage,
    GenerateOptions,
    Message,
    ModelTurn,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    ToolSpec,
    UserMessage,
)
from harness.errors import ProviderError
from harness.tasks import Task, ToolEnvironment


class Model(Protocol):
    """What the loop needs from a model client."""

    async def generate(
        self, system: str, messages: list[Message], tools: list[ToolSpec], options: GenerateOptions
    ) -> ModelTurn: ...


@dataclass
class Actions:
    """What a scaffold made of one model turn."""

    calls: list[ToolCall] = field(default_factory=list)
    """Tool calls to execute now."""
    feedback: str | None = None
    """A message back to the model instead of executing anything (a format error)."""
    done: bool = False
    """The model finished answering this user message."""


class Scaffold(Protocol):
    """How the loop reads a model turn and reports tool results back.

    The default, `NativeTools`, uses the provider's tool calling. A text-only
    scaffold (one bash block per response, as in mini-swe-agent) parses the
    text into a call and returns the output as a user message.
    """

    def actions(self, turn: ModelTurn) -> Actions: ...

    def observe(self, calls: list[ToolCall], results: list[ToolResult]) -> Message: ...


class NativeTools:
    """Provider tool calling: a turn without tool calls ends the user turn."""

    def actions(self, turn: ModelTurn) -> Actions:
        return Actions(calls=list(turn.tool_calls), done=not turn.tool_calls)

    def observe(self, calls: list[ToolCall], results: list[ToolResult]) -> Message:
        return ToolResultsMessage(tuple(results))


class StopTask(Exception):
    """Ends a task early; `reason` goes to the stop_reason column."""

    reason = "error"


class _Finished(Exception):
    """The environment says the task is over (the agent submitted)."""


class StepLimit(StopTask):
    reason = "step_limit"


class TokenLimit(StopTask):
    reason = "token_limit"


class TimeLimit(StopTask):
    reason = "time_limit"


class CostLimit(StopTask):
    reason = "cost_limit"


@dataclass
class TaskOutcome:
    """How one task run ended, and its transcript."""

    status: str
    """`ok` when the loop ran to a stop of its own, `error` when a call failed for good."""
    stop_reason: str
    """completed, step_limit, token_limit, time_limit, cost_limit or error."""
    transcript: list[Message] = field(default_factory=list)
    model_calls: int = 0
    user_turns: int = 0
    """User messages the model was given."""
    error: str | None = None
    wall_s: float = 0.0
    format_errors: int = 0
    """Model calls whose answer the scaffold could not read (still exchanges and model calls)."""


@dataclass
class Budget:
    """Counters the loop checks against the task's limits."""

    task: Task
    started: float = field(default_factory=time.monotonic)
    steps: int = 0
    steps_this_turn: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def check(self) -> None:
        limits = self.task.limits
        if self.steps_this_turn >= limits.max_steps_per_turn:
            raise StepLimit(f"{limits.max_steps_per_turn} model calls for one user message")
        if self.steps >= limits.max_steps:
            raise StepLimit(f"{limits.max_steps} model calls in the task")
        if limits.max_tokens is not None and self.tokens >= limits.max_tokens:
            raise TokenLimit(f"{self.tokens} tokens >= {limits.max_tokens}")
        if limits.max_wall_s is not None and time.monotonic() - self.started >= limits.max_wall_s:
            raise TimeLimit(f"wall time over {limits.max_wall_s:g} s")
        if limits.max_cost_usd is not None and self.cost_usd >= limits.max_cost_usd:
            raise CostLimit(f"cost ${self.cost_usd:.4f} >= ${limits.max_cost_usd:g}")


ToolLog = Callable[[dict[str, Any]], None]
Pricer = Callable[[ModelTurn], float | None]


async def run_task(
    task: Task,
    model: Model,
    env: ToolEnvironment,
    *,
    options: GenerateOptions | None = None,
    tool_log: ToolLog | None = None,
    price: Pricer | None = None,
    scaffold: Scaffold | None = None,
) -> TaskOutcome:
    """Run one task to its end. Provider failures become an `error` outcome, never an exception.

    The environment ends the whole task early by setting a true `finished`
    attribute (e.g. after a `submit` tool call).
    """
    options = options or task.options
    scaffold = scaffold or NativeTools()
    budget = Budget(task)
    outcome = TaskOutcome(status="ok", stop_reason="completed")
    messages = outcome.transcript
    tools = list(task.tools)
    try:
        for turn_index, user_text in enumerate(task.user_messages, start=1):
            messages.append(UserMessage(user_text))
            outcome.user_turns = turn_index
            budget.steps_this_turn = 0
            while True:
                budget.check()
                budget.steps += 1
                budget.steps_this_turn += 1
                with context.bind(step=budget.steps, user_turn=turn_index, role="agent"):
                    turn = await model.generate(task.system, messages, tools, options)
                    outcome.model_calls += 1
                    messages.append(AssistantMessage(turn))
                    if turn.usage is not None:
                        budget.tokens += (turn.usage.input_tokens or 0) + (turn.usage.output_tokens or 0)
                    if price is not None:
                        budget.cost_usd += price(turn) or 0.0
                    actions = scaffold.actions(turn)
                    if actions.feedback is not None:
                        outcome.format_errors += 1
                        messages.append(UserMessage(actions.feedback))
                        continue
                    if actions.calls:
                        results = [await _execute(env, call, tool_log) for call in actions.calls]
                        messages.append(scaffold.observe(actions.calls, results))
                    if getattr(env, "finished", False):
                        raise _Finished
                    if actions.done:
                        break
    except _Finished:
        pass
    except StopTask as stop:
        outcome.stop_reason = stop.reason
        outcome.error = str(stop)
    except ProviderError as exc:
        outcome.status, outcome.stop_reason, outcome.error = "error", "error", str(exc)
    outcome.wall_s = round(time.monotonic() - budget.started, 3)
    return outcome


async def _execute(env: ToolEnvironment, call: Any, tool_log: ToolLog | None) -> ToolResult:
    started = time.perf_counter()
    try:
        result = await env.execute(call)
    except Exception as exc:
        # A broken tool is the model's observation, not the end of the task.
        result = ToolResult(call.id, call.name, f"tool error: {type(exc).__name__}: {exc}", is_error=True)
    if tool_log is not None:
        ctx = context.current()
        tool_log(
            {
                "run_id": ctx.run_id,
                "task_id": ctx.task_id,
                "model": ctx.model,
                "repeat": ctx.repeat,
                "session": ctx.session,
                "step": ctx.step,
                "user_turn": ctx.user_turn,
                "tool_call_id": call.id,
                "tool": call.name,
                "ok": not result.is_error,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "output_bytes": len(result.content.encode("utf-8")),
            }
        )
    return result
