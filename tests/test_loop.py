"""The agent loop against a scripted model: turns, tools, limits, stop reasons."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from harness import context
from harness.conversation import (
    AssistantMessage,
    Message,
    ModelTurn,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    ToolSpec,
    Usage,
    UserMessage,
)
from harness.errors import ProviderError
from harness.loop import run_task
from harness.tasks import Limits, Task

ECHO = ToolSpec("echo", "echo text", {"type": "object", "properties": {"text": {"type": "string"}}})


@dataclass
class ScriptedModel:
    """Answers each call with the next scripted turn; records what it was sent."""

    script: list[ModelTurn | Exception]
    seen: list[tuple[int, int, int]] = field(default_factory=list)  # (step, user_turn, n_messages)

    async def generate(self, system, messages: list[Message], tools, options) -> ModelTurn:
        ctx = context.current()
        self.seen.append((ctx.step, ctx.user_turn, len(messages)))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


@dataclass
class EchoEnv:
    calls: list[tuple[str, int]] = field(default_factory=list)

    async def execute(self, call: ToolCall) -> ToolResult:
        self.calls.append((call.name, context.current().user_turn))
        if call.name != "echo":
            raise RuntimeError(f"no tool {call.name}")
        return ToolResult(call.id, call.name, call.arguments.get("text", ""))

    async def close(self) -> None:
        pass


def tool_turn(*names: str, tokens: int = 10) -> ModelTurn:
    calls = [ToolCall(f"c{i}", n, {"text": n}) for i, n in enumerate(names)]
    return ModelTurn(tool_calls=calls, usage=Usage(input_tokens=tokens, output_tokens=1))


def text_turn(text: str = "done", tokens: int = 10) -> ModelTurn:
    return ModelTurn(text=text, usage=Usage(input_tokens=tokens, output_tokens=1))


def task(n_user: int = 2, **limits) -> Task:
    return Task(
        id="t",
        suite="test",
        system="sys",
        user_messages=tuple(f"message {i}" for i in range(1, n_user + 1)),
        tools=(ECHO,),
        limits=Limits(**limits),
    )


def run(t: Task, model, env=None, **kw):
    return asyncio.run(run_task(t, model, env or EchoEnv(), **kw))


def test_multi_turn_with_parallel_tools_completes():
    model = ScriptedModel([tool_turn("echo", "echo"), text_turn(), tool_turn("echo"), text_turn()])
    env = EchoEnv()
    logged: list[dict] = []
    out = run(task(2), model, env, tool_log=logged.append)
    assert out.stop_reason == "completed" and out.status == "ok"
    assert out.model_calls == 4 and out.user_turns == 2
    # Steps are global, user turns 1-based; each call sees the growing history.
    assert [s[:2] for s in model.seen] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert [s[2] for s in model.seen] == [1, 3, 5, 7]
    assert env.calls == [("echo", 1), ("echo", 1), ("echo", 2)]
    assert [r["tool"] for r in logged] == ["echo"] * 3 and all(r["ok"] for r in logged)
    kinds = [type(m) for m in out.transcript]
    assert kinds == [UserMessage, AssistantMessage, ToolResultsMessage, AssistantMessage] * 2


def test_broken_tool_is_an_observation_not_a_crash():
    model = ScriptedModel([tool_turn("missing"), text_turn()])
    logged: list[dict] = []
    out = run(task(1), model, tool_log=logged.append)
    assert out.stop_reason == "completed"
    results = out.transcript[2]
    assert isinstance(results, ToolResultsMessage) and results.results[0].is_error
    assert "no tool missing" in results.results[0].content
    assert logged[0]["ok"] is False


def test_step_limit_per_user_turn():
    model = ScriptedModel([tool_turn("echo")] * 10)
    out = run(task(2, max_steps_per_turn=3), model)
    assert out.stop_reason == "step_limit" and out.model_calls == 3


def test_step_limit_total():
    model = ScriptedModel([tool_turn("echo"), text_turn()] * 5)
    out = run(task(5, max_steps=5), model)
    assert out.stop_reason == "step_limit" and out.model_calls == 5 and out.user_turns == 3


def test_token_limit_checked_before_the_next_call():
    model = ScriptedModel([tool_turn("echo", tokens=60), tool_turn("echo", tokens=60), text_turn()])
    out = run(task(1, max_tokens=100), model)
    assert out.stop_reason == "token_limit" and out.model_calls == 2


def test_time_limit():
    model = ScriptedModel([tool_turn("echo")] * 3)
    out = run(task(1, max_wall_s=0.0), model)
    assert out.stop_reason == "time_limit" and out.model_calls == 0


def test_cost_limit_uses_the_pricer():
    model = ScriptedModel([tool_turn("echo")] * 5)
    out = run(task(1, max_cost_usd=0.25), model, price=lambda turn: 0.1)
    assert out.stop_reason == "cost_limit" and out.model_calls == 3


def test_provider_error_ends_the_task_with_error():
    model = ScriptedModel([tool_turn("echo"), ProviderError("HTTP 400: bad request", status=400)])
    out = run(task(1), model)
    assert out.status == "error" and out.stop_reason == "error"
    assert "HTTP 400" in (out.error or "") and out.model_calls == 1


@pytest.mark.parametrize("n_user", [1, 3])
def test_no_tools_means_one_call_per_user_message(n_user):
    model = ScriptedModel([text_turn()] * n_user)
    out = run(task(n_user), model)
    assert out.model_calls == n_user and out.user_turns == n_user


class OneCommandPerText:
    """A text scaffold: `RUN <cmd>` is a call, anything else a format error, `DONE` ends."""

    def actions(self, turn):
        from harness.loop import Actions

        if turn.text == "DONE":
            return Actions(done=True)
        if turn.text.startswith("RUN "):
            return Actions(calls=[ToolCall(f"s{len(turn.text)}", "echo", {"text": turn.text[4:]})])
        return Actions(feedback="say RUN <cmd> or DONE")

    def observe(self, calls, results):
        return UserMessage("output: " + results[0].content)


def test_text_scaffold_counts_format_errors_and_feeds_outputs_back():
    model = ScriptedModel([text_turn("RUN hi"), text_turn("hmm"), text_turn("RUN again"), text_turn("DONE")])
    out = run(task(1), model, scaffold=OneCommandPerText())
    assert out.stop_reason == "completed" and out.model_calls == 4 and out.format_errors == 1
    users = [m.text for m in out.transcript if isinstance(m, UserMessage)]
    assert users == ["message 1", "output: hi", "say RUN <cmd> or DONE", "output: again"]
    # Feedback and observations are not user turns of the task.
    assert out.user_turns == 1


@dataclass
class SubmitEnv(EchoEnv):
    finished: bool = False

    async def execute(self, call):
        if call.name == "submit":
            self.finished = True
            return ToolResult(call.id, call.name, "submitted")
        return await super().execute(call)


def test_environment_can_end_the_task_on_submit():
    model = ScriptedModel([tool_turn("echo"), tool_turn("submit"), text_turn("never asked")])
    out = run(task(3), model, SubmitEnv())
    assert out.stop_reason == "completed" and out.model_calls == 2 and out.user_turns == 1
