"""`ampbench ingest`: existing logs become the result files of a run.

Expected values are computed here from the source files by simple walks that
share no code with the ingest modules (or taken literally from the SOURCES.md
notes of the shared fixtures), so a bug in a reader cannot agree with itself.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import UserError
from harness.ingest import detect, ingest
from harness.results import load

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
DATA = Path(__file__).resolve().parent / "data" / "ingest"
TRAJECTORIES = FIXTURES / "trajectories"
CASSETTES = FIXTURES / "provider-cassettes"

# SOURCES.md of the trajectories: api_calls per file.
SOURCES_API_CALLS = {
    "mini-swe-agent/django__django-16255.traj.json": 17,
    "mini-swe-agent/django__django-11163.traj.json": 13,
    "mini-swe-agent/django__django-10999.traj.json": 18,
    "swe-agent/pydicom__pydicom-1458.traj": 12,
    "swe-agent/swe-agent__test-repo-i1.traj": 5,
}


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared fixtures not found at {path} (they live beside the clone in ../shared/fixtures)")
    return path


def tasks_by(run_dir: Path, key: str = "source_file") -> dict[str, dict[str, str]]:
    with open(run_dir / "tasks.csv", encoding="utf-8", newline="") as handle:
        return {row[key]: row for row in csv.DictReader(handle)}


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def num(cell: str) -> int | None:
    return None if cell == "" else int(float(cell))


def walk(value: Any, key: str) -> list[Any]:
    """Every value stored under `key` anywhere in a JSON document."""
    found = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                found.append(v)
            found.extend(walk(v, key))
    elif isinstance(value, list):
        for v in value:
            found.extend(walk(v, key))
    return found


# ----------------------------------------------------------------------------- trajectories


@pytest.fixture(scope="module")
def trajectory_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("traj") / "run"
    result = ingest([need(TRAJECTORIES)], out, progress=False)
    assert result.files == 5
    assert [s.path for s in result.skipped] == [str(TRAJECTORIES / "SOURCES.md")]
    return out


def test_trajectories_give_the_api_calls_tokens_and_exit_statuses_stored_in_them(
    trajectory_run: Path,
) -> None:
    tasks = tasks_by(trajectory_run)
    assert set(tasks) == set(SOURCES_API_CALLS)
    exchanges = Counter(r["task_id"] for r in jsonl(trajectory_run / "exchanges.jsonl"))
    for name, api_calls in SOURCES_API_CALLS.items():
        data = json.loads((TRAJECTORIES / name).read_text(encoding="utf-8"))
        stats = data["info"]["model_stats"]
        row = tasks[name]
        assert stats["api_calls"] == api_calls  # the fixture is what SOURCES.md says
        assert num(row["model_calls"]) == api_calls
        # One exchange row per model call: the lower bound a trajectory can give.
        assert num(row["exchanges"]) == api_calls == exchanges[row["task_id"]]
        assert row["exit_status"] == data["info"]["exit_status"]
        assert row["exchanges_exact"] == "false"
        assert float(row["cost_usd"]) == pytest.approx(stats["instance_cost"])
        if name.startswith("mini-swe-agent/"):
            usages = walk(data, "usage")
            assert len(usages) == api_calls
            assert num(row["input_tokens"]) == sum(u["prompt_tokens"] for u in usages)
            assert num(row["output_tokens"]) == sum(u["completion_tokens"] for u in usages)
            assert num(row["cache_read_input_tokens"]) == sum(
                (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0 for u in usages
            )
            assert num(row["reasoning_tokens"]) == sum(
                (u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0 for u in usages
            )
            assert row["status"] == "ok" and row["stop_reason"] == "completed"
            # v1: one bash action per assistant message; here every response had exactly one.
            assert num(row["tool_calls"]) == api_calls
            assert json.loads(row["tool_calls_by_name"]) == {"bash": api_calls}
        else:
            assert num(row["input_tokens"]) == stats["tokens_sent"]
            assert num(row["output_tokens"]) == stats["tokens_received"]
            assert row["cache_read_input_tokens"] == "" and row["reasoning_tokens"] == ""  # unknown, not 0
            assert num(row["steps"]) == len(data["trajectory"])
            assert num(row["tool_calls"]) == sum(1 for s in data["trajectory"] if s["action"].strip())


def test_trajectory_run_loads_and_records_its_limits(trajectory_run: Path) -> None:
    data = load(trajectory_run)
    assert len(data.tasks) == 5 and data.orphaned_exchanges == 0
    assert len(data.exchanges) == sum(SOURCES_API_CALLS.values())
    assert set(data.exchanges["source"]) == {"ingest:mini-swe-agent", "ingest:swe-agent"}
    assert set(data.tool_calls["source"]) == {"ingest:mini-swe-agent", "ingest:swe-agent"}
    manifest = data.manifest
    assert manifest["kind"] == "ingest" and manifest["status"] == "complete"
    assert manifest["formats"] == {"mini-swe-agent": 3, "swe-agent": 2}
    assert any("lower bound" in sentence for sentence in manifest["limits"])
    assert (trajectory_run / "summary.md").read_text(encoding="utf-8").strip()


def test_mini_swe_agent_exchange_rows_carry_each_calls_usage(trajectory_run: Path) -> None:
    name = "mini-swe-agent/django__django-16255.traj.json"
    data = json.loads((TRAJECTORIES / name).read_text(encoding="utf-8"))
    task_id = tasks_by(trajectory_run)[name]["task_id"]
    rows = [r for r in jsonl(trajectory_run / "exchanges.jsonl") if r["task_id"] == task_id]
    assistants = [m for m in data["messages"] if m["role"] == "assistant"]
    assert [r["step"] for r in rows] == list(range(1, len(assistants) + 1))
    assert [r["input_tokens"] for r in rows] == [
        m["extra"]["response"]["usage"]["prompt_tokens"] for m in assistants
    ]
    assert all(r["status"] == 200 and r["attempt"] == 1 and r["role"] == "agent" for r in rows)
    assert all(r["sent"] is True and r["source"] == "ingest:mini-swe-agent" for r in rows)
    assert tasks_by(trajectory_run)[name]["unsent_attempts"] == "0"
    assert rows[0]["visible_reasoning_chars"] == len(
        assistants[0]["extra"]["response"]["choices"][0]["message"]["reasoning"]
    )
    assert rows[0]["latency_ms"] is None  # not in the file: unknown, not 0


def test_swe_agent_without_a_model_name_says_unknown(trajectory_run: Path) -> None:
    # The old-format fixtures sit outside their `<model>__...` run folder and name no model.
    assert tasks_by(trajectory_run)["swe-agent/swe-agent__test-repo-i1.traj"]["model"] == "unknown"


def test_swe_agent_model_comes_from_its_run_folder(tmp_path: Path) -> None:
    run_folder = tmp_path / "gpt4__swe-bench-dev__default__t-0.00__p-0.95__c-3.00__install-1"
    run_folder.mkdir()
    shutil.copy(need(TRAJECTORIES / "swe-agent" / "swe-agent__test-repo-i1.traj"), run_folder)
    ingest([tmp_path], tmp_path / "run", progress=False)
    assert tasks_by(tmp_path / "run", "task_id")["swe-agent__test-repo-i1"]["model"] == "gpt4"


def test_mini_swe_agent_v1_1_tool_calling_fixture(tmp_path: Path) -> None:
    path = DATA / "mini-swe-agent" / "demo__toolcall-1.traj.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    ingest([path], tmp_path / "run", progress=False)
    row = tasks_by(tmp_path / "run", "task_id")["demo__toolcall-1"]
    # Two responses plus one whose output failed to parse (only its FormatError message remains).
    assert num(row["model_calls"]) == data["info"]["model_stats"]["api_calls"] == 3
    assert num(row["exchanges"]) == 3
    assert num(row["tool_calls"]) == 3 and json.loads(row["tool_calls_by_name"]) == {"bash": 3}
    assert num(row["input_tokens"]) == 1200 + 1500
    assert num(row["output_tokens"]) == 80 + 60
    assert num(row["cache_read_input_tokens"]) == 1100
    assert num(row["cache_creation_input_tokens"]) == 1100
    assert num(row["reasoning_tokens"]) == 20
    assert num(row["visible_reasoning_chars"]) == len(data["messages"][6]["reasoning_content"])
    assert row["format"] == "mini-swe-agent-1.1" and row["exit_status"] == "Submitted"
    assert "without usage: 1" in row["ingest_notes"]
    tools = jsonl(tmp_path / "run" / "tool_calls.jsonl")
    assert [(t["step"], t["tool_call_id"], t["ok"]) for t in tools] == [
        (1, "toolu_a1", True),
        (1, "toolu_a2", False),
        (3, "toolu_a3", True),
    ]


# A trajectory of SWE-agent's (`<model>__<data>__<config>__t-..__p-..__c-..__install-..`) run folder layout.
_REPLAY_FOLDER = "replay__marshmallow-code__marshmallow-1867__default__t-0.20__p-0.95__c-2.00__install-1"


def test_swe_agent_demonstrations_and_replays_have_no_provider_exchanges(tmp_path: Path) -> None:
    base = json.loads(
        need(TRAJECTORIES / "swe-agent" / "swe-agent__test-repo-i1.traj").read_text(encoding="utf-8")
    )
    steps = len(base["trajectory"])
    actions = sum(1 for s in base["trajectory"] if s["action"].strip())
    no_tokens = {"total_cost": 0, "instance_cost": 0, "tokens_sent": 0, "tokens_received": 0}

    def write(
        relative: str, *, api_calls: int, model: str | None = None, stats: dict[str, Any] | None = None
    ) -> None:
        data = json.loads(json.dumps(base))
        data["info"]["model_stats"] = {**(stats if stats is not None else no_tokens), "api_calls": api_calls}
        if model is not None:  # SWE-agent 1.x keeps its run config, model included, as a JSON string
            data["replay_config"] = json.dumps({"agent": {"model": {"name": model}}})
        path = tmp_path / "trajs" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data), encoding="utf-8")

    write("demo.traj", api_calls=0)  # a demonstration: steps written by hand, no call counted
    write("replay.traj", api_calls=steps, model="replay")  # `sweagent run-replay`: the replay model
    write(f"{_REPLAY_FOLDER}/old-replay.traj", api_calls=steps)  # old layout: the run folder names the model
    write("replayed-gpt-4o.traj", api_calls=steps, model="gpt-4o")  # replayed calls count no tokens
    write("model-run.traj", api_calls=steps, model="gpt-4o", stats=base["info"]["model_stats"])
    ingest([tmp_path / "trajs"], tmp_path / "run", progress=False)

    tasks = tasks_by(tmp_path / "run")
    expected = {
        "demo.traj": "demonstration",
        "replay.traj": "replay",
        f"{_REPLAY_FOLDER}/old-replay.traj": "replay",
        "replayed-gpt-4o.traj": "replay",
    }
    exchanges = Counter(r["task_id"] for r in jsonl(tmp_path / "run" / "exchanges.jsonl"))
    tools = Counter(r["task_id"] for r in jsonl(tmp_path / "run" / "tool_calls.jsonl"))
    for name, reason in expected.items():
        row = tasks[name]
        assert row["no_provider_reason"] == reason, name
        assert (num(row["model_calls"]), num(row["exchanges"]), exchanges[row["task_id"]]) == (0, 0, 0), name
        for column in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "prompt_tokens",
            "cost_usd",
        ):
            assert row[column] == "", (name, column)  # unknown, never 0
        # The actions did run: steps and tool calls stay.
        assert (num(row["steps"]), num(row["tool_calls"]), tools[row["task_id"]]) == (steps, actions, actions)
        assert "no provider call" in row["ingest_notes"]
    assert tasks[f"{_REPLAY_FOLDER}/old-replay.traj"]["model"] == "replay"
    control = tasks["model-run.traj"]
    assert control["no_provider_reason"] == ""
    assert num(control["exchanges"]) == steps == exchanges[control["task_id"]]
    assert num(control["input_tokens"]) == base["info"]["model_stats"]["tokens_sent"]
    limits = load(tmp_path / "run").manifest["limits"]
    assert any(
        "4 of 5 ingested tasks were demonstrations or replays" in line
        and "1 demonstration, 3 replay" in line
        and "0 provider exchanges" in line
        for line in limits
    ), limits


def test_mini_swe_agent_test_models_and_demonstrations_have_no_provider_exchanges(tmp_path: Path) -> None:
    base = json.loads((DATA / "mini-swe-agent" / "demo__toolcall-1.traj.json").read_text(encoding="utf-8"))
    scripted = json.loads(json.dumps(base))
    # What minisweagent.models.test_models.DeterministicToolcallModel.serialize() writes; it reports
    # cost_per_call (1.0) per call, which no provider billed.
    scripted["info"]["config"]["model"] = {
        "model_name": "deterministic_toolcall",
        "cost_per_call": 1.0,
        "outputs": [],
    }
    scripted["info"]["config"]["model_type"] = "minisweagent.models.test_models.DeterministicToolcallModel"
    scripted["info"]["model_stats"] = {"instance_cost": 3.0, "api_calls": 3}
    scripted["instance_id"] = "scripted"
    demo = json.loads(json.dumps(base))
    demo["info"]["model_stats"] = {"instance_cost": 0.0, "api_calls": 0}
    demo["instance_id"] = "demo"
    for data in (scripted, demo):
        (tmp_path / f"{data['instance_id']}.traj.json").write_text(json.dumps(data), encoding="utf-8")
    ingest([tmp_path], tmp_path / "run", progress=False)
    tasks = tasks_by(tmp_path / "run", "task_id")
    assert (tasks["scripted"]["no_provider_reason"], tasks["demo"]["no_provider_reason"]) == (
        "test model",
        "demonstration",
    )
    for row in tasks.values():
        assert (num(row["model_calls"]), num(row["exchanges"])) == (0, 0)
        assert row["input_tokens"] == row["output_tokens"] == row["cost_usd"] == ""
        assert num(row["tool_calls"]) == 3  # the actions ran
    assert not jsonl(tmp_path / "run" / "exchanges.jsonl")
    assert any("2 of 2 ingested tasks" in line for line in load(tmp_path / "run").manifest["limits"])


# ----------------------------------------------------------------------------- cassettes


def _sse(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload and payload != "[DONE]":
                events.append(json.loads(payload))
    return events


def recorded_facts(path: Path) -> list[dict[str, Any]]:
    """Per interaction: status, tool calls and usage, read straight from the recorded body."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    facts = []
    for interaction in doc["interactions"]:
        response = interaction["response"]
        status = response["status"]["code"]
        if "parsed_body" in response:
            payload, events = response["parsed_body"], None
        else:
            body = response["body"]["string"]
            body = body if isinstance(body, bytes) else body.encode("utf-8")
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            text = body.decode("utf-8")
            payload, events = (
                (json.loads(text), None) if text.lstrip().startswith("{") else (None, _sse(text))
            )
        facts.append({"status": status, **(_from_json(payload) if events is None else _from_events(events))})
    return facts


def _anthropic_input(usage: dict[str, Any]) -> int:
    return sum(
        usage.get(k) or 0 for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )


def _from_json(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or (payload.get("error") and not payload.get("choices")):
        return {"tools": 0, "input": None, "output": None}
    usage = payload.get("usage") or {}
    if payload.get("type") == "message":  # Anthropic Messages
        tools = sum(1 for b in payload["content"] if b["type"] == "tool_use")
        return {"tools": tools, "input": _anthropic_input(usage), "output": usage.get("output_tokens")}
    if "choices" in payload:  # Chat Completions
        tools = len(payload["choices"][0]["message"].get("tool_calls") or [])
        return {"tools": tools, "input": usage.get("prompt_tokens"), "output": usage.get("completion_tokens")}
    tools = sum(1 for item in payload.get("output") or [] if item["type"] == "function_call")  # Responses
    return {"tools": tools, "input": usage.get("input_tokens"), "output": usage.get("output_tokens")}


def _from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    facts: dict[str, Any] = {"tools": 0, "input": None, "output": None}
    chat_calls: set[int] = set()
    for event in events:
        kind = event.get("type", "")
        if kind == "message_start":
            facts["input"] = _anthropic_input(event["message"]["usage"])
        elif kind == "message_delta":
            usage = event.get("usage") or {}
            if "input_tokens" in usage:  # final cumulative counts (e.g. after server tools)
                facts["input"] = _anthropic_input(usage)
            facts["output"] = usage.get("output_tokens", facts["output"])
        elif kind == "content_block_start" and event["content_block"]["type"] == "tool_use":
            facts["tools"] += 1
        elif kind == "response.completed":
            usage = event["response"]["usage"]
            facts["input"], facts["output"] = usage["input_tokens"], usage["output_tokens"]
            facts["tools"] = sum(1 for i in event["response"]["output"] if i["type"] == "function_call")
        elif "choices" in event:  # a Chat Completions chunk
            for choice in event["choices"]:
                for call in (choice.get("delta") or {}).get("tool_calls") or []:
                    chat_calls.add(call["index"])
            if event.get("usage"):
                facts["input"], facts["output"] = (
                    event["usage"]["prompt_tokens"],
                    event["usage"]["completion_tokens"],
                )
    if chat_calls:
        facts["tools"] = len(chat_calls)
    return facts


@pytest.fixture(scope="module")
def cassette_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vcr") / "run"
    result = ingest([need(CASSETTES)], out, progress=False)
    assert result.formats == Counter({"vcr": len(list(CASSETTES.rglob("*.yaml")))})
    assert [s.path for s in result.skipped] == [str(CASSETTES / "SOURCES.md")]
    return out


def _cassette_files() -> list[str]:
    return (
        sorted(p.relative_to(CASSETTES).as_posix() for p in CASSETTES.rglob("*.yaml"))
        if CASSETTES.exists()
        else []
    )


@pytest.mark.parametrize("name", _cassette_files() or ["(no shared fixtures)"])
def test_cassette_counts_match_the_recorded_bodies(cassette_run: Path, name: str) -> None:
    facts = recorded_facts(CASSETTES / name)
    row = tasks_by(cassette_run)[name]
    rows = [r for r in jsonl(cassette_run / "exchanges.jsonl") if r["task_id"] == row["task_id"]]
    assert len(rows) == len(facts) == num(row["exchanges"])
    assert [r["status"] for r in rows] == [f["status"] for f in facts]
    assert [r["tool_calls"] for r in rows] == [f["tools"] for f in facts]
    assert num(row["tool_calls"]) == sum(f["tools"] for f in facts)
    known_in = [f["input"] for f in facts if f["input"] is not None]
    known_out = [f["output"] for f in facts if f["output"] is not None]
    assert num(row["input_tokens"]) == (sum(known_in) if known_in else None)
    assert num(row["output_tokens"]) == (sum(known_out) if known_out else None)
    assert row["exchanges_exact"] == "true" and row["source"] == "ingest:vcr"
    assert all(r["source"] == "ingest:vcr" for r in rows)


# Per-interaction facts written in provider-cassettes/SOURCES.md:
# (status, streamed, tool calls, reasoning tokens, input tokens, output tokens) or None where not given.
SOURCES_FACTS = {
    "pydantic-ai/test_anthropic_tool_with_thinking.yaml": [
        (200, False, 1, None, 398, 155),
        (200, False, 0, None, 566, 126),
    ],
    "pydantic-ai/test_openai_responses_thinking_with_modified_history.yaml": [
        (200, False, 0, 64, 13, 248),
        (400, False, 0, None, None, None),
        (200, False, 0, 128, 142, 355),
    ],
    "pydantic-ai/test_deepseek_deferred_capability_with_thinking.yaml": [
        (200, False, 1, 60, 563, 116),
        (200, False, 2, 26, 875, 79),
        (200, False, 0, 25, 976, 61),
    ],
    "pydantic-ai/test_tool_use_failed_error_streaming.yaml": [
        (200, True, 0, None, None, None),
        (200, True, 1, 23, 304, 49),
        (200, True, 0, 38, 339, 58),
    ],
    "opentelemetry-python-contrib/test_chat_completion_multiple_tools_streaming_with_content.yaml": [
        (200, True, 2, None, 75, 51)
    ],
    "llm/test_responses_interleaved_reasoning_between_tool_calls.yaml": [
        (200, False, 1, 45, 88, 65),
        (200, False, 1, 98, 171, 118),
        (200, False, 1, 196, 302, 217),
        (200, False, 5, 17, 532, 119),
    ],
    "mirascope/test_call_with_tools__anthropic_claude_sonnet_4_0__stream.yaml": [
        (200, True, 2, None, 416, 109),
        (200, True, 0, None, 602, 52),
    ],
    "mirascope/test_model_not_found__anthropic_claude_sonnet_4_0.yaml": [
        (404, False, 0, None, None, None),
        (404, False, 0, None, None, None),
    ],
}


@pytest.mark.parametrize("name", sorted(SOURCES_FACTS))
def test_cassette_rows_state_the_facts_in_sources_md(cassette_run: Path, name: str) -> None:
    row = tasks_by(cassette_run)[name]
    rows = [r for r in jsonl(cassette_run / "exchanges.jsonl") if r["task_id"] == row["task_id"]]
    got = [
        (
            r["status"],
            r["streamed"],
            r["tool_calls"],
            r["reasoning_tokens"],
            r["input_tokens"],
            r["output_tokens"],
        )
        for r in rows
    ]
    expected = SOURCES_FACTS[name]
    # SOURCES.md leaves reasoning tokens out where the body has none to report; compare where it states them.
    assert [g[:3] + g[4:] for g in got] == [e[:3] + e[4:] for e in expected]
    assert [g[3] for g, e in zip(got, expected, strict=True) if e[3] is not None] == [
        e[3] for e in expected if e[3]
    ]


def test_cassette_errors_retries_and_duplicates(cassette_run: Path) -> None:
    tasks = tasks_by(cassette_run)
    groq = tasks["pydantic-ai/test_tool_use_failed_error_streaming.yaml"]
    # The in-stream error (HTTP 200 + `event: error`) is a failed exchange, not a model call.
    assert (num(groq["exchanges"]), num(groq["failed_exchanges"]), num(groq["model_calls"])) == (3, 1, 2)
    not_found = tasks["mirascope/test_model_not_found__anthropic_claude_sonnet_4_0.yaml"]
    assert (num(not_found["failed_exchanges"]), num(not_found["model_calls"]), not_found["status"]) == (
        2,
        0,
        "error",
    )
    # x-stainless-retry-count is 0 on both: two recordings, not a retry; flagged as duplicates.
    assert (
        num(not_found["retries"]) == 0
        and "1 requests start the conversation over" in not_found["ingest_notes"]
    )
    # SOURCES.md: the same two-turn exchange recorded three times and appended.
    gpt4o = tasks["mirascope/test_call_with_tools__openai_gpt_4o_completions__sync.yaml"]
    assert num(gpt4o["exchanges"]) == 6 and "2 requests start the conversation over" in gpt4o["ingest_notes"]
    # A real multi-turn loop is not flagged.
    assert tasks["llm/test_responses_interleaved_reasoning_between_tool_calls.yaml"]["ingest_notes"] == ""
    deepseek = [
        r
        for r in jsonl(cassette_run / "exchanges.jsonl")
        if r["task_id"] == tasks["pydantic-ai/test_deepseek_model_thinking_part.yaml"]["task_id"]
    ]
    assert deepseek[0]["reasoning_tokens"] == 415 and deepseek[0]["visible_reasoning_chars"] > 0
    assert deepseek[0]["host"] == "api.deepseek.com" and deepseek[0]["endpoint"] == "/chat/completions"


# ----------------------------------------------------------------------------- SnitchBench


def test_snitchbench_transcripts(tmp_path: Path) -> None:
    result = ingest([DATA / "snitchbench"], tmp_path / "run", progress=False)
    assert result.files == 2 and not result.skipped
    tasks = tasks_by(tmp_path / "run", "model")
    bold = tasks["claude-4-sonnet"]
    assert (bold["task_id"], num(bold["repeat"])) == ("boldly-act-email-and-logs", 1)
    assert num(bold["user_turns"]) == 2
    assert num(bold["model_calls"]) == num(bold["exchanges"]) == 4  # four ASSISTANT sections
    assert json.loads(bold["tool_calls_by_name"]) == {"sendEmail": 1, "writeLogs": 2}
    assert float(bold["wall_s"]) == 41.37 and bold["status"] == "ok"
    for column in (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "reasoning_tokens",
        "prompt_tokens",
    ):
        assert bold[column] == "", column  # not in the transcripts: unknown, never 0
    timed_out = tasks["o4-mini"]
    assert (timed_out["task_id"], num(timed_out["repeat"])) == ("tamely-act-cli-and-logs", 2)
    assert num(timed_out["model_calls"]) == 1
    assert num(timed_out["exchanges"]) == 2 and num(timed_out["failed_exchanges"]) == 1  # the call in flight
    assert timed_out["status"] == "error" and "timed out" in timed_out["error"]
    assert json.loads(timed_out["tool_calls_by_name"]) == {"executeCommand": 1}
    tools = jsonl(tmp_path / "run" / "tool_calls.jsonl")
    assert [(t["tool"], t["step"], t["ok"]) for t in tools] == [
        ("writeLogs", 1, True),
        ("sendEmail", 1, True),
        ("writeLogs", 3, True),
        ("executeCommand", 1, False),
    ]
    exchanges = jsonl(tmp_path / "run" / "exchanges.jsonl")
    assert all(r["input_tokens"] is None and r["output_tokens"] is None for r in exchanges)
    assert [r["visible_reasoning_chars"] > 0 for r in exchanges[:4]] == [True, False, True, False]
    assert any("no token counts" in s for s in load(tmp_path / "run").manifest["limits"])


# ----------------------------------------------------------------------------- Inspect


def _inspect_available() -> bool:
    try:
        import inspect_ai.log  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(
    not _inspect_available(), reason="inspect_ai not installed (pip install 'ampbench[inspect]')"
)
@pytest.mark.parametrize("name", ["tiny.eval", "tiny.json"])
def test_inspect_logs(tmp_path: Path, name: str) -> None:
    from inspect_ai.log import read_eval_log

    path = DATA / "inspect" / name
    assert detect(path) == "inspect"
    ingest([path], tmp_path / "run", progress=False)
    tasks = tasks_by(tmp_path / "run", "task_id")
    assert set(tasks) == {"tiny_add/sum-1", "tiny_add/sum-2"}
    log = read_eval_log(str(path))
    for sample in log.samples or []:
        row = tasks[f"tiny_add/{sample.id}"]
        model_events = [e for e in sample.events if e.event == "model"]
        agent = [e for e in model_events if e.role is None]
        graders = [e for e in model_events if e.role == "grader"]
        assert num(row["model_calls"]) == len(agent)
        assert num(row["exchanges"]) == sum(1 + (e.retries or 0) for e in agent)
        assert num(row["retries"]) == sum(e.retries or 0 for e in agent)
        assert num(row["judge_exchanges"]) == len(graders)
        assert num(row["tool_calls"]) == sum(1 for e in sample.events if e.event == "tool")
        usage = sample.model_usage["mockllm/model"]
        # Inspect's input_tokens exclude cache reads; the OTel total includes them.
        total_in = usage.input_tokens + (usage.input_tokens_cache_read or 0)
        assert num(row["input_tokens"]) + num(row["judge_input_tokens"]) == total_in
        assert (
            num(row["output_tokens"]) + sum(e.output.usage.output_tokens for e in graders)
            == usage.output_tokens
        )
        assert float(row["wall_s"]) == pytest.approx(sample.total_time)
    assert (num(tasks["tiny_add/sum-1"]["retries"]), num(tasks["tiny_add/sum-1"]["exchanges"])) == (2, 4)
    assert json.loads(tasks["tiny_add/sum-1"]["tool_calls_by_name"]) == {"add": 2}
    assert (float(tasks["tiny_add/sum-1"]["score"]), float(tasks["tiny_add/sum-2"]["score"])) == (1.0, 0.0)
    rows = jsonl(tmp_path / "run" / "exchanges.jsonl")
    assert [
        (r["attempt"], r["status"]) for r in rows if r["task_id"] == "tiny_add/sum-1" and r["step"] == 1
    ] == [
        (1, None),
        (2, None),
        (3, 200),
    ]
    assert {r["role"] for r in rows if r["step"] == 0} == {"judge"}


# The truth about tests/data/ingest/inspect/retry-*.{eval,json} (make_inspect_log.py wrote them from one
# Inspect run): sample retry-2 is one model call that failed twice with HTTP 503 and then answered;
# sample no-retry is two model calls that each answered at once.
RETRY_LOGS = ["retry-events.eval", "retry-count.json", "retry-per-attempt.eval", "retry-per-attempt.json"]


def _raw_model_events(path: Path, sample_id: str) -> list[dict[str, Any]]:
    """The model events of one sample as written in the log file (not through Inspect's types)."""
    import zipfile

    import inspect_ai.log  # noqa: F401  (Inspect's .eval members are zstd: Inspect adds it to zipfile)

    if path.suffix == ".eval":
        with zipfile.ZipFile(path) as archive:
            sample = json.loads(archive.read(f"samples/{sample_id}_epoch_1.json"))
    else:
        sample = next(
            s for s in json.loads(path.read_text(encoding="utf-8"))["samples"] if s["id"] == sample_id
        )
    return [e for e in sample["events"] if e["event"] == "model"]


@pytest.mark.skipif(
    not _inspect_available(), reason="inspect_ai not installed (pip install 'ampbench[inspect]')"
)
@pytest.mark.parametrize("name", RETRY_LOGS)
def test_inspect_retried_call_is_one_model_call_in_every_layout(tmp_path: Path, name: str) -> None:
    path = DATA / "inspect" / name
    events = _raw_model_events(path, "retry-2")
    # The layout each file claims to be in.
    if name == "retry-count.json":  # one event, with the SDK's retries on it
        assert [(e.get("retries"), e.get("error")) for e in events] == [(2, None)]
    elif name == "retry-events.eval":  # one event per attempt, no call_id (what Inspect 0.3.x writes)
        assert [bool(e.get("error")) for e in events] == [True, True, False]
        assert all("call_id" not in e and not e.get("retries") for e in events)
    else:  # per-attempt: shared call_id, attempt 1..3, and `retries` repeated on the last attempt
        assert len({e["call_id"] for e in events}) == 1
        assert [e["attempt"] for e in events] == [1, 2, 3]
        assert (events[-1]["retries"], events[-1]["call_retries"]) == (2, 2)

    ingest([path], tmp_path / "run", progress=False)
    tasks = tasks_by(tmp_path / "run", "task_id")
    retried = tasks["flaky_add/retry-2"]
    assert (num(retried["model_calls"]), num(retried["exchanges"]), num(retried["retries"])) == (1, 3, 2)
    assert num(retried["failed_exchanges"]) == 2 and retried["status"] == "ok"
    assert (num(retried["input_tokens"]), num(retried["output_tokens"])) == (200, 12)
    rows = [r for r in jsonl(tmp_path / "run" / "exchanges.jsonl") if r["task_id"] == "flaky_add/retry-2"]
    assert [(r["step"], r["attempt"]) for r in rows] == [(1, 1), (1, 2), (1, 3)]
    assert [r["status"] for r in rows] == [None, None, 200]
    assert [bool(r["error"]) for r in rows] == [True, True, False]
    assert [r["input_tokens"] for r in rows] == [None, None, 200]  # only the answer carries usage
    if name != "retry-count.json":
        assert all("503" in r["error"] for r in rows[:2])  # the failed attempts keep their error
    plain = tasks["flaky_add/no-retry"]
    assert (num(plain["model_calls"]), num(plain["exchanges"]), num(plain["retries"])) == (2, 2, 0)
    assert json.loads(plain["tool_calls_by_name"]) == {"add": 1}
    rows = [r for r in jsonl(tmp_path / "run" / "exchanges.jsonl") if r["task_id"] == "flaky_add/no-retry"]
    assert [(r["step"], r["attempt"], r["tool_calls"]) for r in rows] == [(1, 1, 1), (2, 1, 0)]


def test_inspect_without_inspect_ai_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # import now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'ampbench\[inspect\]'"):
        ingest([DATA / "inspect"], tmp_path / "forced", "inspect", progress=False)
    # Auto-detected among other files: listed and skipped, the rest is ingested.
    result = ingest([DATA / "inspect", DATA / "snitchbench"], tmp_path / "mixed", progress=False)
    assert result.formats == Counter({"snitchbench": 2})
    assert {s.reason for s in result.skipped} == {
        "reading Inspect logs needs inspect_ai: pip install 'ampbench[inspect]'"
    }


# ----------------------------------------------------------------------------- detection, skipping, CLI


def test_detection_by_name_and_content(tmp_path: Path) -> None:
    mini = DATA / "mini-swe-agent" / "demo__toolcall-1.traj.json"
    assert detect(mini) == "mini-swe-agent"
    renamed = tmp_path / "renamed.json"  # no telling suffix: the content decides
    shutil.copy(mini, renamed)
    assert detect(renamed) == "mini-swe-agent"
    assert detect(DATA / "snitchbench" / "o4-mini--tamely-act-cli-and-logs--2.md") == "snitchbench"
    assert detect(Path(__file__)) is None
    if CASSETTES.exists():
        assert detect(CASSETTES / "llm" / "test_tool_use_chain_of_two_calls.yaml") == "vcr"
        assert detect(TRAJECTORIES / "swe-agent" / "pydicom__pydicom-1458.traj") == "swe-agent"


def test_corrupt_and_unknown_files_are_listed_skipped_and_never_counted(tmp_path: Path) -> None:
    from tests.conftest import ampbench

    mixed = tmp_path / "logs"
    (mixed / "nested").mkdir(parents=True)
    shutil.copy(DATA / "mini-swe-agent" / "demo__toolcall-1.traj.json", mixed / "nested")
    shutil.copy(DATA / "snitchbench" / "o4-mini--tamely-act-cli-and-logs--2.md", mixed)
    (mixed / "broken.traj.json").write_text('{"info": {"model_stats": {"api_calls": 3}', encoding="utf-8")
    (mixed / "broken.yaml").write_text("interactions:\n- request: [unclosed\n", encoding="utf-8")
    (mixed / "notes.txt").write_text("just some notes\n", encoding="utf-8")
    out = tmp_path / "run"
    proc = ampbench("ingest", str(mixed), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "ingested 2 files" in proc.stdout and "3 skipped" in proc.stdout
    for name in ("broken.traj.json", "broken.yaml", "notes.txt"):
        assert f"skipped {mixed / name}" in proc.stderr
    data = load(out)
    assert len(data.tasks) == 2 and set(data.tasks["format"]) == {"mini-swe-agent-1.1", "snitchbench-md"}
    skipped = {Path(s["path"]).name: s["reason"] for s in data.manifest["skipped"]}
    assert skipped["notes.txt"] == "matches no format"
    assert skipped["broken.traj.json"].startswith("unreadable as mini-swe-agent: not valid JSON")
    assert skipped["broken.yaml"].startswith("unreadable as vcr")
    assert data.manifest["files_ingested"] == 2


def test_forced_format_skips_files_of_other_formats(tmp_path: Path) -> None:
    result = ingest([DATA], tmp_path / "run", "snitchbench", progress=False)
    assert result.formats == Counter({"snitchbench": 2})
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert reasons["demo__toolcall-1.traj.json"] == "not a snitchbench file (looks like mini-swe-agent)"


def test_bad_input_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown format 'mini' \(available: mini-swe-agent, swe-agent"):
        ingest([DATA], tmp_path / "a", "mini", progress=False)
    with pytest.raises(UserError, match="no such file or directory"):
        ingest([tmp_path / "missing"], tmp_path / "b", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match="already exists and is not empty"):
        ingest([DATA / "snitchbench"], tmp_path / "full", progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match=r"nothing ingested .*: matches no format"):
        ingest([tmp_path / "junk"], tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()  # no empty run directory left behind


def test_the_same_task_and_model_twice_becomes_two_repeats(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(DATA / "mini-swe-agent" / "demo__toolcall-1.traj.json", tmp_path / folder)
    ingest([tmp_path / "a", tmp_path / "b"], tmp_path / "run", progress=False)
    data = load(tmp_path / "run")
    assert sorted(data.tasks["repeat"]) == [0, 1]
    assert sorted(Counter(data.exchanges["repeat"]).items()) == [(0, 3), (1, 3)]
    assert data.orphaned_exchanges == 0
