"""`harness.project`: campaign totals, intervals, claim arithmetic, traffic shape and stated assumptions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness import compare as cmp
from harness import project as proj
from harness.errors import UserError
from tests.test_compare import make_run, random_tasks, step, task

# Every task run of the fixed runs: 5 steps of 200 input / 20 output tokens, 1 retry, 1 judge call.
FIXED_STEPS = [step(200, 20, failures=1 if i == 0 else 0, tools=("write_logs",)) for i in range(5)]
EXCHANGES, RETRIES, CALLS, INPUT, OUTPUT = 6, 1, 5, 1000, 100


def fixed_run(root: Path, name: str, models: tuple[str, ...] = ("anthropic:claude-x",), **kw) -> Path:
    tasks = [
        task(f"t{i}", FIXED_STEPS, repeat=r, judge=1, cost=0.125, wall_s=10.0, latency_ms=1000.0)
        for i in range(4)
        for r in range(3)
    ]
    return make_run(root, name, dict.fromkeys(models, tasks), **kw)


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixed_run(tmp_path_factory.mktemp("fixed"), "fixed")


def zero_width(est: dict, value: float) -> None:
    assert est["value"] == pytest.approx(value)
    assert est["ci_low"] == est["ci_high"] == pytest.approx(value)


def test_fixed_counts_give_n_times_mean_with_zero_width(fixed: Path) -> None:
    p = proj.project(cmp.load_runs([fixed]), tasks=100, include_judge=False)
    assert p.task_runs_per_model == 100
    zero_width(p.totals["exchanges"], 100 * EXCHANGES)
    zero_width(p.totals["model_calls"], 100 * CALLS)
    zero_width(p.totals["tool_calls"], 100 * 5)
    zero_width(p.totals["input_tokens"], 100 * INPUT)
    zero_width(p.totals["output_tokens"], 100 * OUTPUT)
    zero_width(p.totals["cost_usd"], 100 * 0.125)


def test_flags_repeats_models_judge_retries(fixed: Path) -> None:
    runs = cmp.load_runs([fixed])
    with_all = proj.project(runs, tasks=10, repeats=3, models=4)
    # 10 tasks x 3 repeats x 4 models, each task run 6 agent + 1 judge exchange.
    zero_width(with_all.totals["exchanges"], 10 * 3 * 4 * (EXCHANGES + 1))
    zero_width(with_all.totals["input_tokens"], 10 * 3 * 4 * (INPUT + 50))
    bare = proj.project(runs, tasks=10, include_judge=False, include_retries=False)
    zero_width(bare.totals["exchanges"], 10 * (EXCHANGES - RETRIES))
    zero_width(bare.totals["input_tokens"], 10 * INPUT)


def test_two_measured_models_add_up(tmp_path: Path) -> None:
    run = fixed_run(tmp_path, "two", models=("anthropic:claude-x", "sim:terse"))
    p = proj.project(cmp.load_runs([run]), tasks=7, include_judge=False)
    assert [m["model"] for m in p.models] == ["anthropic:claude-x", "sim:terse (simulated)"]
    zero_width(p.models[0]["exchanges"], 7 * EXCHANGES)
    zero_width(p.totals["exchanges"], 2 * 7 * EXCHANGES)


def test_claim_arithmetic(fixed: Path) -> None:
    p = proj.project(cmp.load_runs([fixed]), tasks=500, include_judge=False, claim=16_000_000)
    total = 500 * EXCHANGES
    c = p.claim
    assert c is not None
    zero_width(c["campaigns"], 16_000_000 / total)
    zero_width(c["exchanges_per_request"], EXCHANGES)
    zero_width(c["requests"], 16_000_000 / EXCHANGES)
    text = proj.render(p, "markdown")
    assert "16,000,000 exchanges = 5,333 [5,333, 5,333] such campaigns" in text
    assert "2,666,667 [2,666,667, 2,666,667] requests" in text


def test_variable_counts_give_an_interval_around_the_total(tmp_path: Path) -> None:
    run = make_run(tmp_path, "var", {"m:a": random_tasks(random.Random(3), 8, 3)})
    runs = cmp.load_runs([run])
    mean = runs.tasks["exchanges"].mean() + runs.tasks["judge_exchanges"].mean()
    p = proj.project(runs, tasks=300)
    est = p.totals["exchanges"]
    assert est["value"] == pytest.approx(300 * mean)
    assert est["ci_low"] < est["value"] < est["ci_high"]
    # Same seed, same interval; other seed, other interval.
    assert proj.project(runs, tasks=300).totals == p.totals
    assert proj.project(runs, tasks=300, seed=9).totals["exchanges"] != est


def test_benchmark_sizes(fixed: Path) -> None:
    runs = cmp.load_runs([fixed])
    for name, size in (
        ("swe-bench", 2294),
        ("swe-bench-verified", 500),
        ("swe-bench-lite", 300),
        ("snitchbench", 80),
    ):
        p = proj.project(runs, benchmark=name, include_judge=False)
        assert p.task_runs_per_model == size
        zero_width(p.totals["exchanges"], size * EXCHANGES)
    assert proj.project(runs, benchmark="snitchbench", repeats=1).task_runs_per_model == 4
    # The suite measured here is "snitch": projecting it to SWE-bench is allowed, and said.
    notes = proj.project(runs, benchmark="swe-bench").assumptions
    assert any("measured by suite 'swe'" in a for a in notes)


def test_assumptions_name_runs_flags_and_simulated_models(tmp_path: Path) -> None:
    run = fixed_run(
        tmp_path,
        "ingested",
        models=("sim:terse",),
        manifest={"kind": "ingest", "limits": ["trajectories carry no latencies"]},
        source="ingest:mini-swe-agent",
    )
    p = proj.project(
        cmp.load_runs([run]),
        benchmark="snitchbench",
        include_judge=False,
        include_retries=False,
        concurrency=4,
    )
    text = "\n".join(p.assumptions)
    assert "measured run ingested" in text and str(run) in text and "ingest:mini-swe-agent" in text
    assert "trajectories carry no latencies" in text
    assert "SnitchBench, 4 tests x 20 runs" in text and "80 task runs per model" in text
    assert "retries: excluded" in text and "judge exchanges excluded" in text
    assert "sim:terse (simulated)" in text
    assert "160,000 requests/day is an assumed reference" in text
    for fmt in proj.FORMATS:
        out = proj.render(p, fmt)
        assert "sim:terse (simulated)" in out and "retries: excluded" in out


def test_traffic_shape(fixed: Path) -> None:
    p = proj.project(cmp.load_runs([fixed]), tasks=100, include_judge=False, concurrency=10)
    t = p.traffic
    assert t is not None and t["available"]
    # 100 task runs of 10 s wall time, 10 at once: 100 s; 600 exchanges in 100 s.
    assert t["campaign_hours"] == pytest.approx(100 / 3600)
    assert t["exchanges_per_minute"] == pytest.approx(600 / (100 / 60))
    assert t["exchanges_per_day"] == pytest.approx(600 / 100 * 86400)
    # 6 exchanges of 1 s each in a 10 s task run: 60% of the time waiting on the provider.
    assert t["mean_in_flight_requests"] == pytest.approx(10 * 0.6)
    assert t["peak_in_flight_requests"] == 10
    assert t["times_chat_product"] == pytest.approx(600 / 100 * 86400 / 160_000)
    assert "160,000 requests/day" in proj.render(p, "table")


def test_unknown_tokens_stay_unknown(tmp_path: Path) -> None:
    run = make_run(tmp_path, "notok", {"m:a": random_tasks(random.Random(1), 4, 2, tokens=False)})
    p = proj.project(cmp.load_runs([run]), tasks=50)
    assert p.totals["input_tokens"]["value"] is None and p.totals["cost_usd"]["value"] is None
    assert p.totals["exchanges"]["value"] > 0
    assert json.loads(proj.render(p, "json"))["totals"]["input_tokens"]["value"] is None
    assert "unknown" in proj.render(p, "markdown")


def test_bad_flags_raise_user_errors(fixed: Path, tmp_path: Path) -> None:
    runs = cmp.load_runs([fixed])
    bad = [
        ({}, "pass --tasks N or --benchmark"),
        ({"tasks": 5, "benchmark": "swe-bench"}, "either --tasks or --benchmark"),
        ({"benchmark": "swe-bench-full"}, "unknown benchmark 'swe-bench-full' \\(available: swe-bench, "),
        ({"tasks": 0}, "--tasks must be at least 1"),
        ({"tasks": 5, "models": 0}, "--models must be at least 1"),
        ({"tasks": 5, "repeats": -1}, "--repeats must be at least 1"),
        ({"tasks": 5, "concurrency": 0}, "--concurrency must be at least 1"),
        ({"tasks": 5, "claim": -3.0}, "--claim must be a positive"),
        ({"tasks": 5, "suite": "swe"}, "no task runs of suite 'swe'"),
    ]
    for kwargs, message in bad:
        with pytest.raises(UserError, match=message):
            proj.project(runs, **kwargs)
    other = make_run(tmp_path, "swe-run", {"m:a": random_tasks(random.Random(2), 3, 1)}, suite="swe")
    with pytest.raises(UserError, match="span several suites"):
        proj.project(cmp.load_runs([fixed, other]), tasks=5)
    assert proj.project(cmp.load_runs([fixed, other]), tasks=5, suite="swe").suite == "swe"


def test_project_command_prints_json(fixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli.analysis import project_command

    project_command(
        [fixed],
        tasks=None,
        benchmark="swe-bench-verified",
        models=None,
        repeats=None,
        include_judge=False,
        include_retries=True,
        claim=16_000_000,
        concurrency=8,
        suite=None,
        format="json",
        seed=0,
        resamples=500,
    )
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["exchanges"]["value"] == 500 * EXCHANGES
    assert data["claim"]["campaigns"]["value"] == pytest.approx(16_000_000 / (500 * EXCHANGES))
    with pytest.raises(UserError, match="unknown format"):
        project_command([fixed], tasks=5, benchmark=None, models=None, repeats=None, include_judge=True,
                        include_retries=True, claim=None, concurrency=None, suite=None, format="csv", seed=0,
                        resamples=500)  # fmt: skip
