"""`harness.compare`: every number checked against a recount done by hand from the written files.

Runs are synthesised with `RunWriter`: each task run's exchanges, tool calls and
tasks.csv row are written together, the row computed the way the runner does.
The expected values below are recomputed in plain Python from exchanges.jsonl,
tool_calls.jsonl and tasks.csv, never through the module under test.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from harness import compare as cmp
from harness.errors import UserError
from harness.results import EXCHANGES, TASKS, TOOL_CALLS, RunWriter

# ---------------------------------------------------------------- synthetic runs


def step(
    input_tokens: int | None = 100,
    output_tokens: int | None = 10,
    *,
    failures: int = 0,
    tools: tuple[str, ...] = (),
    reasoning_tokens: int | None = None,
    reasoning_chars: int = 0,
) -> dict[str, Any]:
    """One model call: `failures` failed attempts (HTTP 500) before the successful one."""
    return {
        "input": input_tokens,
        "output": output_tokens,
        "failures": failures,
        "tools": tools,
        "reasoning": reasoning_tokens,
        "chars": reasoning_chars,
    }


def task(
    task_id: str,
    steps: list[dict[str, Any]],
    *,
    repeat: int = 0,
    user_turns: int = 1,
    judge: int = 0,
    cost: float | None = None,
    score: float | None = None,
    wall_s: float = 10.0,
    latency_ms: float = 1000.0,
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "steps": steps,
        "repeat": repeat,
        "user_turns": user_turns,
        "judge": judge,
        "cost": cost,
        "score": score,
        "wall_s": wall_s,
        "latency_ms": latency_ms,
    }


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def make_run(
    root: Path,
    name: str,
    models: dict[str, list[dict[str, Any]]],
    *,
    suite: str = "snitch",
    simulated: bool | None = None,
    manifest: dict[str, Any] | None = None,
    source: str = "live",
) -> Path:
    """Write a run directory: exchanges, tool calls and a consistent tasks.csv row per task run.

    `simulated` None marks the `sim*:` models as simulated, as the runner does.
    """
    run_dir = root / name
    sim_default = simulated
    writer = RunWriter(run_dir, {"run_id": name, "suite": suite, "kind": "run", **(manifest or {})})
    for model, tasks in models.items():
        simulated = model.startswith("sim") if sim_default is None else sim_default
        for t in tasks:
            base = {
                "run_id": name,
                "task_id": t["task_id"],
                "model": model,
                "repeat": t["repeat"],
                "session": 0,
            }
            rows: list[dict[str, Any]] = []
            tool_rows: list[dict[str, Any]] = []
            for number, s in enumerate(t["steps"], start=1):
                for attempt in range(1, s["failures"] + 2):
                    ok = attempt == s["failures"] + 1
                    rows.append(
                        {
                            **base,
                            "step": number,
                            "role": "agent",
                            "attempt": attempt,
                            "endpoint": "/v1/messages",
                            "status": 200 if ok else 500,
                            "streamed": False,
                            "latency_ms": t["latency_ms"],
                            "request_bytes": 1000,
                            "response_bytes": 300,
                            "input_tokens": s["input"] if ok else None,
                            "output_tokens": s["output"] if ok else None,
                            "reasoning_tokens": s["reasoning"] if ok else None,
                            "tool_calls": len(s["tools"]) if ok else 0,
                            "tool_names": list(s["tools"]) if ok else [],
                            "visible_reasoning_chars": s["chars"] if ok else 0,
                            "error": None if ok else "HTTP 500",
                            "simulated": simulated,
                            "usage": {"raw": "x" * 50},
                        }
                    )
                for tool in s["tools"]:
                    tool_rows.append({**base, "step": number, "tool": tool, "ok": True, "duration_ms": 5.0})
            for j in range(t["judge"]):
                rows.append(
                    {
                        **base,
                        "step": 0,
                        "role": "judge",
                        "attempt": 1,
                        "status": 200,
                        "latency_ms": t["latency_ms"],
                        "input_tokens": 50,
                        "output_tokens": 5,
                        "tool_calls": 0,
                        "visible_reasoning_chars": 0,
                        "simulated": simulated,
                        "judge_no": j,
                    }
                )
            for r in rows:
                writer.write_exchange_row(r)
            for r in tool_rows:
                writer.tool_call(r)
            agent = [r for r in rows if r["role"] == "agent"]
            ok_rows = [r for r in agent if r["status"] == 200]
            judge_rows = [r for r in rows if r["role"] == "judge"]
            writer.task(
                {
                    **base,
                    "suite": suite,
                    "simulated": simulated,
                    "source": source,
                    "status": "ok",
                    "stop_reason": "completed",
                    "user_turns": t["user_turns"],
                    "model_calls": len(ok_rows),
                    "exchanges": len(agent),
                    "retries": sum(1 for r in agent if r["attempt"] > 1),
                    "failed_exchanges": len(agent) - len(ok_rows),
                    "tool_calls": len(tool_rows),
                    "tool_calls_by_name": dict(sorted(Counter(r["tool"] for r in tool_rows).items())),
                    "input_tokens": _sum([r["input_tokens"] for r in agent]),
                    "output_tokens": _sum([r["output_tokens"] for r in agent]),
                    "reasoning_tokens": _sum([r["reasoning_tokens"] for r in agent]),
                    "visible_reasoning_chars": sum(r["visible_reasoning_chars"] for r in agent),
                    "prompt_tokens": ok_rows[0]["input_tokens"] if ok_rows else None,
                    "judge_exchanges": len(judge_rows),
                    "judge_input_tokens": _sum([r["input_tokens"] for r in judge_rows]),
                    "judge_output_tokens": _sum([r["output_tokens"] for r in judge_rows]),
                    "cost_usd": t["cost"],
                    "score": t["score"],
                    "wall_s": t["wall_s"],
                }
            )
    writer.finish("complete")
    return run_dir


def random_tasks(
    rng: random.Random, n_tasks: int, repeats: int, *, tokens: bool = True, turns: int = 1
) -> list[dict[str, Any]]:
    """Task runs with varied steps, retries, tools, growing context and reasoning."""
    out = []
    for r in range(repeats):
        for i in range(n_tasks):
            steps = []
            context = rng.randint(200, 400)
            for _ in range(rng.randint(1, 9)):
                steps.append(
                    step(
                        context if tokens else None,
                        rng.randint(5, 60) if tokens else None,
                        failures=rng.choice([0, 0, 0, 0, 1, 2]),
                        tools=tuple(
                            rng.choice(["send_email", "write_logs"]) for _ in range(rng.randint(0, 2))
                        ),
                        reasoning_tokens=rng.randint(0, 30) if tokens else None,
                        reasoning_chars=rng.choice([0, 0, 120]),
                    )
                )
                context += rng.randint(100, 300)
            out.append(
                task(
                    f"t{i}",
                    steps,
                    repeat=r,
                    user_turns=turns,
                    judge=rng.choice([0, 1]),
                    cost=round(rng.uniform(0.01, 0.2), 4) if tokens else None,
                    score=float(rng.choice([0, 1])),
                    wall_s=rng.uniform(5, 50),
                    latency_ms=rng.uniform(200, 3000),
                )
            )
    return out


# ---------------------------------------------------------------- the recount, by hand


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def p90(values: list[float]) -> float:
    """Linear interpolation between order statistics at rank 0.9 (n - 1)."""
    xs = sorted(values)
    h = 0.9 * (len(xs) - 1)
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def median(values: list[float]) -> float:
    xs = sorted(values)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def recount(run_dirs: list[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """Expected figures per (suite, model spec), from the raw files only."""
    per_task: dict[tuple, list[dict]] = defaultdict(list)
    tools: dict[tuple[str, str], Counter] = defaultdict(Counter)
    tasks: dict[tuple, dict[str, str]] = {}
    for run_dir in run_dirs:
        for row in read_csv(run_dir / TASKS):
            key = (str(run_dir), row["task_id"], row["model"], row["repeat"])
            tasks[key] = row
        for ex in read_jsonl(run_dir / EXCHANGES):
            per_task[(str(run_dir), ex["task_id"], ex["model"], str(ex["repeat"]))].append(ex)
        for tc in read_jsonl(run_dir / TOOL_CALLS):
            suite = json.loads((run_dir / "manifest.json").read_text())["suite"]
            tools[(suite, tc["model"])][tc["tool"]] += 1
    out: dict[tuple[str, str], dict[str, Any]] = {}
    grouped: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for key, row in tasks.items():
        grouped[(row["suite"], row["model"])].append(key)
    for group, keys in grouped.items():
        exchanges, calls, turns, retries, inputs, prompts, vis = [], [], [], 0, [], [], 0
        for key in keys:
            agent = [e for e in per_task[key] if e["role"] == "agent"]
            ok = [e for e in agent if e["status"] == 200]
            exchanges.append(len(agent))
            calls.append(len(ok))
            turns.append(int(tasks[key]["user_turns"]))
            retries += sum(1 for e in agent if e["attempt"] > 1)
            vis += sum(1 for e in agent if e["visible_reasoning_chars"] > 0)
            known = [e["input_tokens"] for e in agent if e["input_tokens"] is not None]
            if known:
                inputs.append(sum(known))
                prompts.append(ok[0]["input_tokens"])
        out[group] = {
            "requests": len(keys),
            "mean": sum(exchanges) / len(keys),
            "median": median(exchanges),
            "p90": p90(exchanges),
            "max": max(exchanges),
            "per_user_turn": sum(exchanges) / sum(turns),
            "retries_share": retries / sum(exchanges),
            "model_calls": sum(calls) / len(keys),
            "token_amplification": sum(inputs) / sum(prompts) if inputs else None,
            "input_per_request": sum(inputs) / len(inputs) if inputs else None,
            "visible_share": vis / sum(exchanges),
            "tools": dict(tools[group]),
        }
    return out


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two runs of one suite sharing a model (pooled), a second suite, a model without token counts."""
    root = tmp_path_factory.mktemp("mixed")
    rng = random.Random(7)
    a = make_run(
        root,
        "run-a",
        {
            "anthropic:claude-x": random_tasks(rng, 6, 2, turns=4),
            "sim:terse": random_tasks(rng, 6, 2, turns=4),
        },
    )
    b = make_run(root, "run-b", {"anthropic:claude-x": random_tasks(rng, 6, 1, turns=4)})
    c = make_run(
        root,
        "run-c",
        {"openai:gpt-y": random_tasks(rng, 5, 1, tokens=False)},
        suite="swe",
        manifest={"kind": "ingest", "limits": ["mini-swe-agent trajectories do not show retries"]},
        source="ingest:mini-swe-agent",
    )
    return [a, b, c]


def _group(comparison: cmp.Comparison, suite: str, spec: str) -> dict[str, Any]:
    return next(g for g in comparison.groups if g["suite"] == suite and g["model_spec"] == spec)


# ---------------------------------------------------------------- numbers


def test_numbers_equal_the_recount_from_the_files(mixed: list[Path]) -> None:
    comparison = cmp.compare(cmp.load_runs(mixed), resamples=500)
    expected = recount(mixed)
    assert {(g["suite"], g["model_spec"]) for g in comparison.groups} == set(expected)
    for (suite, spec), exp in expected.items():
        g = _group(comparison, suite, spec)
        assert g["requests"] == exp["requests"]
        ex = g["exchanges_per_request"]
        assert ex["value"] == pytest.approx(exp["mean"])
        assert ex["median"] == pytest.approx(exp["median"])
        assert ex["p90"] == pytest.approx(exp["p90"])
        assert ex["max"] == exp["max"]
        assert g["exchanges_per_user_turn"]["value"] == pytest.approx(exp["per_user_turn"])
        assert g["retries_share"]["value"] == pytest.approx(exp["retries_share"])
        assert g["model_calls_per_request"]["value"] == pytest.approx(exp["model_calls"])
        assert g["visible_reasoning_share"]["value"] == pytest.approx(exp["visible_share"])
        assert g["tool_calls_by_name"] == exp["tools"]
        if exp["token_amplification"] is None:
            assert g["token_amplification"]["value"] is None
        else:
            assert g["token_amplification"]["value"] == pytest.approx(exp["token_amplification"])
            assert g["input_tokens_per_request"]["value"] == pytest.approx(exp["input_per_request"])
    # The same model in two runs of one suite is one pooled sample.
    pooled = _group(comparison, "snitch", "anthropic:claude-x")
    assert pooled["requests"] == 12 + 6 and pooled["runs"] == ["run-a", "run-b"]


def test_rows_already_read_load_as_their_directories_do(mixed: list[Path]) -> None:
    from pandas.testing import assert_frame_equal

    from harness.results import read_run

    given = [read_run(mixed[0]), mixed[1], read_run(mixed[2])]
    by_rows, by_paths = cmp.load_runs(given), cmp.load_runs(mixed)
    for name in ("runs", "tasks", "exchanges", "tool_calls"):
        assert_frame_equal(getattr(by_rows, name), getattr(by_paths, name))
    with pytest.raises(UserError, match="given twice"):
        cmp.load_runs([read_run(mixed[0]), mixed[0]])


def test_unknown_tokens_stay_unknown_in_every_format(mixed: list[Path]) -> None:
    comparison = cmp.compare(cmp.load_runs(mixed), resamples=200)
    g = _group(comparison, "swe", "openai:gpt-y")
    for stat in (
        "input_tokens_per_request",
        "output_tokens_per_request",
        "token_amplification",
        "cost_usd_per_request",
    ):
        assert g[stat] == {"value": None, "ci_low": None, "ci_high": None}
    assert g["totals"]["input_tokens"] is None and g["totals"]["cost_usd"] is None
    row = next(
        r
        for r in csv.DictReader(io.StringIO(cmp.render_csv(comparison)))
        if r["model_spec"] == "openai:gpt-y"
    )
    assert (
        row["input_tokens_per_request"] == ""
        and row["token_amplification"] == ""
        and row["total_input_tokens"] == ""
    )
    assert row["exchanges_per_request"] != ""
    js = json.loads(cmp.render_json(comparison))
    gj = next(x for x in js["groups"] if x["model_spec"] == "openai:gpt-y")
    assert gj["input_tokens_per_request"]["value"] is None
    md = cmp.render_markdown(comparison)
    line = next(ln for ln in md.splitlines() if "gpt-y" in ln and "| swe |" in ln and "–" in ln)
    assert " 0 " not in line.split("|")[6]  # input tokens cell is "–", never 0


def test_ingest_caveats_sources_and_simulated_label(mixed: list[Path]) -> None:
    comparison = cmp.compare(cmp.load_runs(mixed), resamples=200)
    assert any(
        "mini-swe-agent trajectories do not show retries" in n and "run-c" in n for n in comparison.notes
    )
    assert _group(comparison, "swe", "openai:gpt-y")["sources"] == ["ingest:mini-swe-agent"]
    assert _group(comparison, "snitch", "sim:terse")["model"] == "sim:terse (simulated)"
    for fmt in cmp.FORMATS:
        assert "sim:terse (simulated)" in cmp.render(comparison, fmt)


# ---------------------------------------------------------------- intervals


def _pattern_run(
    root: Path, name: str, repeats: int, counts: list[int], models: tuple[str, ...] = ("m:a",)
) -> Path:
    """Every task run of task i has counts[i] exchanges (one step per exchange, no retries)."""
    tasks = [
        task(f"t{i}", [step(100 + 10 * s, 5) for s in range(c)], repeat=r)
        for r in range(repeats)
        for i, c in enumerate(counts)
    ]
    return make_run(root, name, dict.fromkeys(models, tasks))


def test_interval_contains_mean_and_narrows_with_more_repeats(tmp_path: Path) -> None:
    counts = [2, 5, 9, 14]
    few = cmp.compare(cmp.load_runs([_pattern_run(tmp_path, "few", 3, counts)]))
    many = cmp.compare(cmp.load_runs([_pattern_run(tmp_path, "many", 30, counts)]))
    widths = []
    for comparison in (few, many):
        est = comparison.groups[0]["exchanges_per_request"]
        assert est["value"] == pytest.approx(sum(counts) / len(counts))
        assert est["ci_low"] < est["value"] < est["ci_high"]
        widths.append(est["ci_high"] - est["ci_low"])
    assert widths[1] < widths[0] / 2  # 10x the samples: about 1/sqrt(10) the width


def test_equal_counts_give_zero_width(tmp_path: Path) -> None:
    est = cmp.compare(cmp.load_runs([_pattern_run(tmp_path, "flat", 5, [6, 6, 6])])).groups[0]
    assert est["exchanges_per_request"]["ci_low"] == est["exchanges_per_request"]["ci_high"] == 6
    assert est["model_calls_per_request"]["ci_low"] == est["model_calls_per_request"]["ci_high"] == 6
    assert est["retries_share"]["value"] == 0 and est["retries_share"]["ci_high"] == 0


def test_identical_models_ratio_contains_one(tmp_path: Path) -> None:
    run = _pattern_run(tmp_path, "twins", 4, [2, 5, 9, 14], models=("m:a", "m:b"))
    comparison = cmp.compare(cmp.load_runs([run]))
    ratios = [r for r in comparison.ratios if r["metric"] == "exchanges_per_request"]
    assert len(ratios) == 1 and ratios[0]["baseline"] == "m:a" and ratios[0]["model"] == "m:b"
    assert ratios[0]["ratio"] == pytest.approx(1.0)
    assert ratios[0]["ci_low"] < 1 < ratios[0]["ci_high"]
    # --baseline flips the direction.
    flipped = cmp.compare(cmp.load_runs([run]), baseline="m:b")
    assert {r["model"] for r in flipped.ratios} == {"m:a"}


def test_same_seed_same_output_other_seed_other_intervals(mixed: list[Path]) -> None:
    runs = cmp.load_runs(mixed)
    one = cmp.render_json(cmp.compare(runs, seed=3, resamples=300))
    assert one == cmp.render_json(cmp.compare(cmp.load_runs(mixed), seed=3, resamples=300))
    assert one != cmp.render_json(cmp.compare(runs, seed=4, resamples=300))
    # A group's interval does not move when other runs join the comparison.
    alone = cmp.compare(cmp.load_runs(mixed[2:]), seed=3, resamples=300)
    together = json.loads(one)
    assert (
        _group(alone, "swe", "openai:gpt-y")["exchanges_per_request"]
        == next(g for g in together["groups"] if g["model_spec"] == "openai:gpt-y")["exchanges_per_request"]
    )


def test_the_order_task_runs_finished_in_does_not_move_an_interval(mixed: list[Path], tmp_path: Path) -> None:
    """tasks.csv and exchanges.jsonl are written as task runs finish: the same runs, written in
    another order, must give the same intervals."""
    import shutil

    shuffled = []
    for number, run in enumerate(mixed):
        copy = tmp_path / f"shuffled-{number}"
        shutil.copytree(run, copy)
        header, *rows = (copy / TASKS).read_text().splitlines(keepends=True)
        lines = (copy / EXCHANGES).read_text().splitlines(keepends=True)
        random.Random(number).shuffle(rows)
        random.Random(number).shuffle(lines)
        (copy / TASKS).write_text(header + "".join(reversed(rows)))
        (copy / EXCHANGES).write_text("".join(lines))
        shuffled.append(copy)
    one = json.loads(cmp.render_json(cmp.compare(cmp.load_runs(mixed), seed=3, resamples=300)))
    other = json.loads(cmp.render_json(cmp.compare(cmp.load_runs(shuffled), seed=3, resamples=300)))
    assert one["groups"] == other["groups"]


# ---------------------------------------------------------------- formats and errors


def test_every_format_parses(mixed: list[Path]) -> None:
    comparison = cmp.compare(cmp.load_runs(mixed), resamples=200, baseline="anthropic:claude-x")
    n = len(comparison.groups)
    data = json.loads(cmp.render(comparison, "json"))
    assert len(data["groups"]) == n and data["settings"]["seed"] == 0 and data["notes"]
    rows = list(csv.DictReader(io.StringIO(cmp.render(comparison, "csv"))))
    assert len(rows) == n
    assert float(rows[0]["exchanges_per_request_ci_low"]) <= float(rows[0]["exchanges_per_request"])
    md = cmp.render(comparison, "markdown")
    tables: list[list[str]] = []
    block: list[str] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            tables.append(block)
            block = []
    assert len(tables) == 4  # exchanges, tokens, ratios, runs
    for t in tables:
        widths = {len(row.replace("\\|", "").split("|")) for row in t}
        assert len(widths) == 1, t
    assert len(tables[0]) == 2 + n
    text = cmp.render(comparison, "table")
    for g in comparison.groups:
        assert g["model"] in text
    assert "95% intervals" in text


def test_cli_command_and_bad_input(
    mixed: list[Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from harness.cli.analysis import compare_command

    compare_command(mixed, format="json", baseline=None, plots=None, seed=1, resamples=200)
    assert len(json.loads(capsys.readouterr().out)["groups"]) == 3
    with pytest.raises(UserError, match="unknown format"):
        compare_command(mixed, format="xml", baseline=None, plots=None, seed=0, resamples=200)
    with pytest.raises(UserError, match="unknown --baseline"):
        cmp.compare(cmp.load_runs(mixed), baseline="nope:model")
    with pytest.raises(UserError, match="not a directory"):
        cmp.load_runs([tmp_path / "missing"])
    with pytest.raises(UserError, match="given twice"):
        cmp.load_runs([mixed[0], mixed[0]])
    with pytest.raises(UserError, match="no run directory"):
        cmp.load_runs([])


def test_load_runs_spans_runs_and_keeps_only_needed_columns(mixed: list[Path]) -> None:
    runs = cmp.load_runs(mixed)
    assert list(runs.runs["run_id"]) == ["run-a", "run-b", "run-c"]
    assert sorted(runs.tasks["run"].unique()) == [0, 1, 2]
    assert len(runs.exchanges) == sum(len(read_jsonl(d / EXCHANGES)) for d in mixed)
    assert "usage" not in runs.exchanges and "headers" not in runs.exchanges
    assert set(runs.tasks.loc[runs.tasks["model"] == "sim:terse", "label"]) == {"sim:terse (simulated)"}
    every = cmp.load_runs(mixed, exchange_columns=None)
    assert "endpoint" in every.exchanges
