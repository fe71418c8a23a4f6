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

Retried model calls (`--retries`): a two-sample task run against `flaky/model`,
a model API defined here that raises a retryable error (HTTP 503) twice before
answering sample `retry-2`, and answers sample `no-retry` with a tool call and
then a final answer at once. Truth: `retry-2` is 1 model call, 3 exchanges,
2 retries; `no-retry` is 2 model calls, 2 exchanges, 0 retries. Written in the
layouts Inspect has used for retries:

- `inspect/retry-events.eval`: exactly what this Inspect version wrote (older
  layout: each failed attempt is its own model event with `error`, no `call_id`).
- `inspect/retry-count.json`: older layout where the retries happened inside one
  attempt (provider SDK retries): the two failed events removed and `retries=2`
  set on the successful one, through Inspect's log API.
- `inspect/retry-per-attempt.eval` and `.json`: the per-attempt layout of Inspect's
  `ModelGenerateAccounting` (UKGovernmentBEIS/inspect_ai PR #3860): every model
  event gets `call_id` (shared by the attempts of one call) and `attempt` (1..n);
  the last attempt of a call gets `call_started_at`, `call_completed_at`,
  `call_working_start`, `call_working_time`, `call_retries`, `http_retries` and
  `retries` (`http_retries` if non-zero, else `call_retries`). This Inspect
  version cannot write those fields, so they are added to the JSON of the
  events Inspect wrote (the `.eval` rewritten as a deflate zip).

Every derived log says what was changed in its `eval.metadata`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from inspect_ai import Task, eval, task
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log, write_eval_log
from inspect_ai.model import (
    ChatMessageUser,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    get_model,
    modelapi,
)
from inspect_ai.scorer import match, model_graded_qa
from inspect_ai.solver import generate, use_tools
from inspect_ai.tool import tool
from tenacity import wait_fixed

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


def make_tiny() -> None:
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


# ----------------------------------------------------------------------------- retried model calls


class ServiceUnavailable(Exception):
    """What a provider SDK raises for an HTTP 503: retryable."""


@modelapi(name="flaky")
class FlakyAPI(ModelAPI):
    """Plays a script of outcomes in call order: an exception is raised, a ModelOutput returned."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config or GenerateConfig())
        self.script = iter(flaky_script())

    async def generate(self, input, tools, tool_choice, config) -> ModelOutput:  # type: ignore[no-untyped-def]
        outcome = next(self.script)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def should_retry(self, ex: Exception) -> bool:
        return isinstance(ex, ServiceUnavailable)

    def retry_wait(self) -> Any:
        return wait_fixed(0)


FLAKY_MODEL = "flaky/model"


def flaky_script() -> list[ModelOutput | Exception]:
    answer = ModelOutput.from_content(FLAKY_MODEL, "42")
    answer.usage = _usage(200, 12)
    tool_call = ModelOutput.for_tool_call(FLAKY_MODEL, "add", {"x": 20, "y": 22}, tool_call_id="c9")
    tool_call.usage = _usage(150, 20)
    final = ModelOutput.from_content(FLAKY_MODEL, "42")
    final.usage = _usage(190, 4)
    return [
        # sample retry-2: two retryable errors, then the answer
        ServiceUnavailable("Error code: 503 - service unavailable"),
        ServiceUnavailable("Error code: 503 - service unavailable"),
        answer,
        # sample no-retry: a tool call, then the answer
        tool_call,
        final,
    ]


@task
def flaky_add() -> Task:
    return Task(
        dataset=[
            Sample(id="retry-2", input="What is 20+22? Answer with the number.", target="42"),
            Sample(id="no-retry", input="Use add to compute 20+22.", target="42"),
        ],
        solver=[use_tools(add()), generate()],
        scorer=match(),
    )


def _per_attempt(sample: dict[str, Any]) -> None:
    """Stamp the per-attempt fields on a raw sample's model events, as ModelGenerateAccounting does.

    The calls are known by construction: in sample retry-2 all model events are one call
    (two failed attempts and the answer); in no-retry each model event is its own call.
    """
    events = [e for e in sample["events"] if e["event"] == "model"]
    groups = [events] if sample["id"] == "retry-2" else [[e] for e in events]
    for number, group in enumerate(groups, start=1):
        call_id = f"{sample['id']}-call{number}"
        for attempt, event in enumerate(group, start=1):
            event["call_id"] = call_id
            event["attempt"] = attempt
        first, last = group[0], group[-1]
        retries = len(group) - 1
        last["call_started_at"] = first["timestamp"]
        last["call_completed_at"] = last.get("completed") or last["timestamp"]
        last["call_working_start"] = first["working_start"]
        last["call_working_time"] = round(
            last["working_start"] + (last.get("working_time") or 0.0) - first["working_start"], 6
        )
        last["call_retries"] = retries
        last["http_retries"] = retries  # Inspect's should_retry reports each outer retry as an HTTP retry too
        last["retries"] = retries


def _rewrite_eval(src: Path, dest: Path, note: str) -> None:
    """Copy an .eval zip with the per-attempt fields stamped on its samples and `note` in its metadata."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in dict.fromkeys(zin.namelist()):
            data = zin.read(name)
            if name.startswith("samples/") and name.endswith(".json"):
                sample = json.loads(data)
                _per_attempt(sample)
                data = json.dumps(sample).encode()
            elif name in ("header.json", "_journal/start.json"):
                doc = json.loads(data)
                doc["eval"]["metadata"] = {"note": note}
                data = json.dumps(doc).encode()
            zout.writestr(name, data)


PER_ATTEMPT_NOTE = (
    "make_inspect_log.py: per-attempt fields (call_id, attempt, call_started_at, call_completed_at, "
    "call_working_start, call_working_time, call_retries, http_retries, retries) added to the model "
    "events as Inspect's ModelGenerateAccounting writes them"
)


def make_retries() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        logs = eval(
            flaky_add(),
            model=FLAKY_MODEL,
            log_dir=tmp,
            log_format="eval",
            max_samples=1,  # samples in dataset order, so the script lines up
            display="none",
        )
        assert logs[0].status == "success", logs[0].error
        events_log = Path(logs[0].location)
        shutil.copyfile(events_log, HERE / "retry-events.eval")

        # Per-attempt layout: the fields added to the raw event JSON.
        _rewrite_eval(events_log, HERE / "retry-per-attempt.eval", PER_ATTEMPT_NOTE)
        log = read_eval_log(str(events_log))
        write_eval_log(log, str(Path(tmp) / "events.json"), format="json")
        doc = json.loads((Path(tmp) / "events.json").read_text(encoding="utf-8"))
        doc["eval"]["metadata"] = {"note": PER_ATTEMPT_NOTE}
        for sample in doc["samples"]:
            _per_attempt(sample)
        (HERE / "retry-per-attempt.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

        # Older layout, retries inside one attempt: one event per call, `retries` on it.
        assert log.samples is not None
        retried = next(s for s in log.samples if s.id == "retry-2")
        retried.events = [e for e in retried.events if not (e.event == "model" and e.error)]
        next(e for e in retried.events if e.event == "model").retries = 2
        log.eval.metadata = {
            "note": "make_inspect_log.py: sample retry-2's two failed model events removed and "
            "retries=2 set on its successful one (retries inside the provider SDK)"
        }
        write_eval_log(log, str(HERE / "retry-count.json"), format="json")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", nargs="*", choices=["tiny", "retries"], default=["tiny", "retries"])
    args = parser.parse_args()
    if "tiny" in args.which:
        make_tiny()
    if "retries" in args.which:
        make_retries()
    for path in sorted(HERE.iterdir()):
        print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
