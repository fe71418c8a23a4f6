"""One definition of every figure: report, compare and project agree, and unknowns and errors are excluded alike.

Expected values are counted by hand from the rows each test writes, never by
the code under test.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from harness import compare as cmp
from harness import metrics, report
from harness import project as proj
from harness.records import EXCHANGE_COLUMNS, TASK_COLUMNS, Exchange, TaskRow, summarise
from harness.results import EXCHANGE_FIELDS, RunWriter, load
from harness.runner import RunConfig, Runner
from tests.conftest import ampbench


def _exchange(task_id: str, model: str, *, status: int = 200, attempt: int = 1, **values: Any) -> dict:
    row = {
        "run_id": "r",
        "task_id": task_id,
        "model": model,
        "repeat": 0,
        "session": 0,
        "step": 1,
        "role": "agent",
        "attempt": attempt,
        "endpoint": "/v1/messages",
        "status": status,
        "sent": True,
        "error": None if status == 200 else f"HTTP {status}",
    }
    row.update(values)
    return row


def write_run(run_dir: Path, tasks: list[tuple[dict[str, Any], list[dict]]], **manifest: Any) -> Path:
    """A run directory whose task rows are built by `summarise` from the given exchange rows."""
    extra = [k for known, _ in tasks for k in known if k not in TASK_COLUMNS]
    writer = RunWriter(
        run_dir,
        {"run_id": run_dir.name, "suite": "snitch", "kind": "run", **manifest},
        extra_task_columns=list(dict.fromkeys(extra)),
    )
    for known, rows in tasks:
        for r in rows:
            writer.write_exchange_row(r)
        writer.task(summarise(rows, [], run_id=run_dir.name, suite="snitch", **known))
    writer.finish("complete", summarize=lambda d: report.summary_markdown(load(d)))
    return run_dir


def _report_json(run_dir: Path) -> dict[str, dict]:
    result = ampbench("report", str(run_dir), "--format", "json", timeout=120)
    assert result.returncode == 0, result.stderr
    return {row["model"]: row for row in json.loads(result.stdout)["models"]}


def _compare_json(run_dir: Path) -> dict[str, dict]:
    result = ampbench("compare", str(run_dir), "--format", "json", "--resamples", "200", timeout=120)
    assert result.returncode == 0, result.stderr
    return {g["model"]: g for g in json.loads(result.stdout)["groups"]}


def _same(a: Any, b: Any) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a == pytest.approx(b, rel=1e-12))


def assert_report_equals_compare(run_dir: Path) -> None:
    reported, compared = _report_json(run_dir), _compare_json(run_dir)
    assert reported and set(reported) == set(compared)
    for label, row in reported.items():
        group = compared[label]
        for figure in metrics.FIGURES:
            assert _same(row[figure], group[figure]["value"]), (label, figure)
        for name in metrics.TOTALS:
            assert _same(row[name], group["totals"][name]), (label, name)
        assert row["requests"] == group["requests"] and row["errored"] == group["errored"]


# ---------------------------------------------------------------- schema


def test_file_columns_are_derived_from_the_record_classes():
    assert [f for f in EXCHANGE_COLUMNS] == list(Exchange.__dataclass_fields__)
    assert [f for f in TASK_COLUMNS] == list(TaskRow.__dataclass_fields__)
    # Every column but the raw objects is loaded, so no field silently drops out of the tables.
    assert set(EXCHANGE_COLUMNS) - set(EXCHANGE_FIELDS) == {"headers", "usage"}


def test_a_live_run_writes_and_loads_every_column(tmp_path):
    config = RunConfig(
        suite="snitch",
        models=["sim:terse"],
        out=str(tmp_path / "run"),
        task_ids=["tamely-act-email-and-logs"],
    )
    run_dir = Runner(config, progress=False).run()
    first = json.loads((run_dir / "exchanges.jsonl").read_text().splitlines()[0])
    assert set(first) == set(EXCHANGE_COLUMNS)
    with open(run_dir / "tasks.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[: len(TASK_COLUMNS)] == list(TASK_COLUMNS)
    assert set(EXCHANGE_FIELDS) <= set(load(run_dir).exchanges.columns)


# ---------------------------------------------------------------- one definition


def test_token_amplification_is_the_same_everywhere_when_a_prompt_is_unknown(tmp_path):
    # Task a: 3 calls, input 100 + 200 + 300, prompt 100.  Task b: its token counts were not reported.
    a = [_exchange("a", "anthropic:m", input_tokens=n, output_tokens=5) for n in (100, 200, 300)]
    b = [_exchange("b", "anthropic:m", input_tokens=None, output_tokens=None) for _ in range(2)]
    # Task c reported its total input but its first call (the prompt) did not.
    c = [_exchange("c", "anthropic:m", input_tokens=None), _exchange("c", "anthropic:m", input_tokens=900)]
    run_dir = write_run(
        tmp_path / "amp",
        [({"task_id": t, "model": "anthropic:m"}, rows) for t, rows in (("a", a), ("b", b), ("c", c))],
    )
    truth = (100 + 200 + 300) / 100  # only task a knows both its input and its prompt
    assert _report_json(run_dir)["anthropic:m"]["token_amplification"] == pytest.approx(truth)
    assert _compare_json(run_dir)["anthropic:m"]["token_amplification"]["value"] == pytest.approx(truth)
    assert "token amp" in (run_dir / "summary.md").read_text()
    assert f"| {truth:,.2f} |" in (run_dir / "summary.md").read_text()
    assert_report_equals_compare(run_dir)


def test_errored_task_runs_are_counted_apart_and_left_out_of_every_figure(tmp_path):
    model = "anthropic:m"
    good = [
        ({"task_id": f"ok{i}", "model": model}, [_exchange(f"ok{i}", model, input_tokens=10)] * (i + 1))
        for i in range(3)
    ]
    broken = [
        _exchange("bad", model, status=500),
        _exchange("bad", model, status=500, attempt=2),
        _exchange("bad", model, status=None, attempt=3, sent=False, error="ConnectError: refused"),
    ]
    errored = (
        {"task_id": "bad", "model": model, "status": "error", "error": "HTTP 500: overloaded"},
        broken,
    )
    run_dir = write_run(tmp_path / "err", [*good, errored])
    row = _report_json(run_dir)[model]
    # By hand: three ok task runs with 1, 2 and 3 exchanges; the errored one is apart.
    assert row["requests"] == 3 and row["errored"] == 1
    assert row["exchanges"] == 6 and row["exchanges_per_request"] == pytest.approx(2.0)
    assert row["errored_exchanges"] == 2 and row["errored_unsent_attempts"] == 1
    assert row["errors"] == {"HTTP 500: overloaded": 1}
    group = _compare_json(run_dir)[model]
    assert group["errored"] == 1 and group["exchanges_per_request"]["max"] == 3
    assert_report_equals_compare(run_dir)

    text = ampbench("report", str(run_dir)).stdout
    assert "1 task run(s) errored" in text and "HTTP 500: overloaded" in text
    projection = proj.project(cmp.load_runs([run_dir]), tasks=10)
    assert projection.models[0]["measured_task_runs"] == 3
    assert projection.totals["exchanges"]["value"] == pytest.approx(10 * 2.0)
    assert any("errored" in a for a in projection.assumptions)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["task_runs"] == {"total": 4, "errored": 1, "errors": {"HTTP 500: overloaded": 1}}


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("metrics") / "sim"
    config = RunConfig(
        suite="snitch",
        models=["sim:thorough", "sim-anthropic:reasoner", "sim-responses:terse"],
        repeats=2,
        concurrency=4,
        out=str(out),
        sim_faults=0.2,
        sim_seed=5,
    )
    return Runner(config, progress=False).run()


def test_report_and_compare_agree_on_a_simulator_run(sim_run):
    assert_report_equals_compare(sim_run)


@pytest.mark.parametrize("fmt", ["mini-swe-agent", "swe-agent"])
def test_report_and_compare_agree_on_ingested_runs(fmt, shared_fixtures, tmp_path):
    out = tmp_path / fmt
    result = ampbench(
        "ingest", str(shared_fixtures / "trajectories" / fmt), "--format", fmt, "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert_report_equals_compare(out)


# ---------------------------------------------------------------- groups and baselines


def test_compare_keeps_scaffolds_apart_and_never_pits_real_against_simulated(tmp_path):
    def run(name: str, model: str, calls: int, **manifest: Any) -> Path:
        rows = [_exchange("t", model, input_tokens=10) for _ in range(calls)]
        known = {"task_id": "t", "model": model, "simulated": model.startswith("sim")}
        return write_run(tmp_path / name, [(known, rows)], **manifest)

    tools = run("tools", "sim:m", 2, variant={"scaffold": "tools"})
    bash = run("bash", "sim:m", 5, variant={"scaffold": "bash-only"})
    real = run("real", "anthropic:claude", 4, variant={"scaffold": "tools"})
    other = run("other", "openai:gpt", 8, variant={"scaffold": "tools"})
    comparison = cmp.compare(cmp.load_runs([tools, bash, real, other]), resamples=200)
    by_label = {g["model"]: g for g in comparison.groups}
    assert by_label["sim:m (simulated) [scaffold=tools]"]["exchanges_per_request"]["value"] == 2
    assert by_label["sim:m (simulated) [scaffold=bash-only]"]["exchanges_per_request"]["value"] == 5
    # Labels are data: rich must not read "[scaffold=tools]" as markup and drop it.
    assert "[scaffold=bash-only]" in cmp.render_table(comparison, width=400)
    pairs = {(r["model"], r["baseline"]) for r in comparison.ratios}
    assert pairs == {
        ("sim:m (simulated) [scaffold=bash-only]", "sim:m (simulated) [scaffold=tools]"),
        ("openai:gpt [scaffold=tools]", "anthropic:claude [scaffold=tools]"),
    }
    chosen = cmp.compare(cmp.load_runs([tools, real]), baseline="anthropic:claude", resamples=200)
    ratio = next(r for r in chosen.ratios if r["metric"] == "exchanges_per_request")
    assert ratio["baseline"] == "anthropic:claude [scaffold=tools]" and ratio["ratio"] == pytest.approx(0.5)


def test_report_labels_groups_like_compare(tmp_path):
    rows = [_exchange("t", "sim:m", input_tokens=1)]
    known = {"task_id": "t", "model": "sim:m", "simulated": True}
    run_dir = write_run(tmp_path / "v", [(known, rows)], variant={"scaffold": "x"})
    [row] = report.summary_rows(load(run_dir))
    assert row["model"] == "sim:m (simulated) [scaffold=x]"


def test_task_runs_without_a_provider_are_left_out_and_said(tmp_path):
    model = "openai:gpt-4o"
    real = ({"task_id": "real", "model": model}, [_exchange("real", model, input_tokens=5)] * 4)
    demo = ({"task_id": "demo", "model": model, "no_provider_reason": "demonstration", "model_calls": 0}, [])
    run_dir = write_run(tmp_path / "np", [real, demo])
    row = _report_json(run_dir)[model]
    assert row["requests"] == 1 and row["no_provider"] == 1 and row["exchanges_per_request"] == 4
    assert any("1 task run(s) had no provider" in n for n in report.notes(load(run_dir)))
    assert_report_equals_compare(run_dir)
