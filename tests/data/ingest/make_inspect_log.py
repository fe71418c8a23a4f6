"""Regenerate the small Inspect AI eval logs that `tests/test_ingest.py` ingests.

    .venv/bin/pip install inspect-ai      # optional dependency: `pip install 'ampbench[inspect]'`
    .venv/bin/python tests/data/ingest/make_inspect_log.py

Inspect itself writes the logs: a two-sample task run against Inspect's scripted
`mockllm/model`, with one tool (`add`) and a model-graded scorer whose grader
is a second model role (`grader`), so the log holds agent model events, tool
events, grader model events and per-sample model usage.

mockllm cannot fail, so no real event ever carries `retries`. To cover that
field the script sets `retries=2` on the first model event of sample 1 through
Inspect's own log API (`read_eval_log` / `write_eval_log`) and says so in the
log's metadata. Everything else is exactly what Inspect recorded.

Output (both formats, same content): `inspect/tiny.eval` and `inspect/tiny.json`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from inspect_ai import Task, eval, task
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log, write_eval_log
from inspect_ai.model import ChatMessageUser, ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import model_graded_qa
from inspect_ai.solver import generate, use_tools
from inspect_ai.tool import tool

HERE = Path(__file__).resolve().parent / "inspect"
AGENT_MODEL = "mockllm/model"


@tool
def add():
    async def execute(x: int, y: int) -> int:
        """Add two numbers.

        Args:
            x: First number.
            y: Second number.
        """
        return x + y

    return execute


def _usage(inp: int, out: int, cached: int | None = None) -> ModelUsage:
    return ModelUsage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out + (cached or 0),
        input_tokens_cache_read=cached,
    )


def agent_outputs() -> list[ModelOutput]:
    """Scripted answers: sample 1 calls `add` twice in one response, sample 2 once, then answers."""

    def call(x: int, y: int, call_id: str) -> ModelOutput:
        return ModelOutput.for_tool_call(AGENT_MODEL, "add", {"x": x, "y": y}, tool_call_id=call_id)

    first = call(1, 2, "c1")
    assert first.message.tool_calls is not None
    second = call(3, 4, "c2")
    assert second.message.tool_calls is not None
    # Two parallel tool calls in one response.
    first.message.tool_calls.append(second.message.tool_calls[0])
    first.usage = _usage(120, 30, cached=40)
    done1 = ModelOutput.from_content(AGENT_MODEL, "3 and 7")
    done1.usage = _usage(180, 8)
    call3 = call(20, 22, "c3")
    call3.usage = _usage(110, 25)
    done2 = ModelOutput.from_content(AGENT_MODEL, "42")
    done2.usage = _usage(150, 5)
    return [first, done1, call3, done2]


def grader_outputs() -> list[ModelOutput]:
    outs = [
        ModelOutput.from_content(AGENT_MODEL, "GRADE: C"),
        ModelOutput.from_content(AGENT_MODEL, "GRADE: I"),
    ]
    outs[0].usage = _usage(300, 4)
    outs[1].usage = _usage(310, 4)
    return outs


@task
def tiny_add() -> Task:
    return Task(
        dataset=[
            Sample(id="sum-1", input=[ChatMessageUser(content="Add 1+2 and 3+4.")], target="3 and 7"),
            Sample(id="sum-2", input="What is 20+22?", target="42"),
        ],
        solver=[use_tools(add()), generate()],
        scorer=model_graded_qa(model_role="grader"),
    )


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        logs = eval(
            tiny_add(),
            model=get_model(AGENT_MODEL, custom_outputs=agent_outputs()),
            model_roles={"grader": get_model(AGENT_MODEL, custom_outputs=grader_outputs())},
            log_dir=tmp,
            log_format="eval",
            max_samples=1,  # samples in dataset order, so the scripted outputs line up
            display="none",
        )
        log = read_eval_log(logs[0].location)
        assert log.samples is not None
        first_model_event = next(e for e in log.samples[0].events if e.event == "model")
        first_model_event.retries = 2
        log.eval.metadata = {
            "note": "retries=2 on the first model event of sample sum-1 set by make_inspect_log.py"
        }
        for fmt in ("eval", "json"):
            out = Path(tmp) / f"tiny.{fmt}"
            write_eval_log(log, str(out), format=fmt)
            shutil.copyfile(out, HERE / f"tiny.{fmt}")
    for path in sorted(HERE.iterdir()):
        print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
