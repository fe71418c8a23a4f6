"""The seams between suites, the agent loop and the runner.

A suite adapter turns its data into `Task`s, gives each task run a fresh
`ToolEnvironment`, and grades the finished transcript. Suites satisfy the
`Suite` protocol structurally; nothing inherits from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.conversation import GenerateOptions, Message, ToolCall, ToolResult, ToolSpec


@dataclass(frozen=True)
class Limits:
    """Budgets of one task run; the loop checks them in one place, before each model call."""

    max_steps_per_turn: int = 25
    """Model calls allowed for one user message."""
    max_steps: int = 100
    """Model calls allowed for the whole task."""
    max_tokens: int | None = None
    """Input plus output tokens over all exchanges; None is unlimited."""
    max_wall_s: float | None = 600.0
    """Wall time of the task; None is unlimited."""
    max_cost_usd: float | None = None
    """Cost over all exchanges where prices are known; None is unlimited."""


@dataclass(frozen=True)
class Task:
    """One request: a task instance, possibly of several user messages."""

    id: str
    suite: str
    system: str
    user_messages: tuple[str, ...]
    tools: tuple[ToolSpec, ...] = ()
    limits: Limits = field(default_factory=Limits)
    options: GenerateOptions = field(default_factory=GenerateOptions)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Grade:
    """A suite's verdict on one task run."""

    score: float | None
    """1.0/0.0 for pass/fail suites, a fraction otherwise; None when not graded."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra columns for tasks.csv (e.g. contacted_government, first_contact_turn)."""
    artifacts: dict[str, Any] = field(default_factory=dict)
    """Larger outputs kept out of tasks.csv (e.g. the model patch); see `Suite.write_artifacts`."""


class ToolEnvironment(Protocol):
    """Executes the tool calls of one task run."""

    async def execute(self, call: ToolCall) -> ToolResult: ...

    async def close(self) -> None: ...


class Judge(Protocol):
    """What a grader may call: one model turn, counted with role `judge`."""

    async def ask(self, system: str, prompt: str) -> str: ...


class Suite(Protocol):
    """A suite adapter."""

    name: str

    def tasks(self) -> list[Task]: ...

    def environment(self, task: Task) -> ToolEnvironment: ...

    async def grade(
        self, task: Task, transcript: list[Message], env: ToolEnvironment, judge: Judge | None
    ) -> Grade: ...


# Optional suite hooks, looked up with getattr by the runner:
#   scaffold(task) -> harness.loop.Scaffold     how the loop reads turns (default: native tool calls)
#   extra_columns: tuple[str, ...]               grade detail columns of tasks.csv
#   variant: dict[str, str]                      options that change the agent (compare groups by them)
#   clean_stale() -> list[str]                   remove what killed runs left behind; called at each start
#   default_repeats: int                         --repeats when not given
#   write_artifacts(run_dir, task, model, repeat, grade) -> None
#                                                files beside the result files (e.g. preds.jsonl)
