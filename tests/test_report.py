"""`ampbench report` numbers, recomputed by hand from the raw JSONL rows of a run."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from harness.runner import RunConfig, Runner
from tests.conftest import ampbench


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    config = RunConfig(
        suite="snitch",
        models=["sim:thorough", "sim-anthropic:reasoner"],
        repeats=2,
        concurrency=4,
        out=str(out),
        sim_faults=0.15,
        sim_seed=9,
    )
    return Runner(config, progress=False).run()


def test_report_equals_a_hand_count_of_the_raw_rows(run_dir):
    result = ampbench("report", str(run_dir), "--format", "json", timeout=120)
    assert result.returncode == 0, result.stderr
    reported = {row["model"]: row for row in json.loads(result.stdout)["models"]}

    exchanges = [json.loads(line) for line in (run_dir / "exchanges.jsonl").read_text().splitlines()]
    tools = [json.loads(line) for line in (run_dir / "tool_calls.jsonl").read_text().splitlines()]
    by_model: dict[str, list[dict]] = defaultdict(list)
    for row in exchanges:
        by_model[row["model"]].append(row)

    for model, rows in by_model.items():
        got = reported[f"{model} (simulated)"]
        agent = [r for r in rows if r["role"] == "agent"]
        task_runs = {(r["task_id"], r["repeat"]) for r in rows}
        assert got["requests"] == len(task_runs) == 4 * 2
        assert got["exchanges"] == len(agent)
        assert got["exchanges_per_request"] == pytest.approx(len(agent) / len(task_runs))
        assert got["retries"] == sum(1 for r in agent if r["attempt"] > 1)
        ok = [r for r in agent if r["status"] == 200 and not r["error"]]
        assert got["model_calls"] == len(ok)
        assert got["input_tokens"] == sum(r["input_tokens"] for r in agent if r["input_tokens"] is not None)
        assert got["output_tokens"] == sum(
            r["output_tokens"] for r in agent if r["output_tokens"] is not None
        )
        model_tools = [t for t in tools if t["model"] == model]
        assert got["tool_calls"] == len(model_tools)
        assert got["tool_calls_by_name"] == dict(Counter(t["tool"] for t in model_tools))
        # Token amplification: all input tokens over the input of each task run's first model call.
        first: dict[tuple, int] = {}
        for r in ok:
            key = (r["task_id"], r["repeat"])
            if key not in first or r["step"] < first[key][0]:
                first[key] = (r["step"], r["input_tokens"])
        prompt = sum(tokens for _, tokens in first.values())
        assert got["token_amplification"] == pytest.approx(got["input_tokens"] / prompt)
        with_reasoning = sum(1 for r in agent if r["visible_reasoning_chars"] > 0)
        assert got["visible_reasoning_share"] == pytest.approx(with_reasoning / len(agent))

    # The reasoner shows its reasoning, the thorough profile does not.
    assert reported["sim-anthropic:reasoner (simulated)"]["visible_reasoning_share"] > 0.5
    assert reported["sim:thorough (simulated)"]["visible_reasoning_share"] == 0


def test_markdown_summary_names_every_model_and_labels_the_simulator(run_dir):
    text = (run_dir / "summary.md").read_text()
    assert "sim:thorough (simulated)" in text and "sim-anthropic:reasoner (simulated)" in text
    assert "not real models" in text
