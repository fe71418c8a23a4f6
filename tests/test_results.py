"""Result files: append-only writing, crash safety, the loader and its orphan accounting."""

from __future__ import annotations

import csv
import json

import pytest

from harness.errors import UserError
from harness.ledger import Exchange
from harness.results import EXCHANGES, TASKS, RunWriter, completed_keys, load, read_manifest


def exchange(task_id: str, repeat: int = 0, session: int = 0, **kw) -> Exchange:
    base = dict(
        run_id="r",
        task_id=task_id,
        model="sim:terse",
        repeat=repeat,
        step=1,
        role="agent",
        attempt=1,
        session=session,
        endpoint="/v1/chat/completions",
        method="POST",
        host="127.0.0.1",
        status=200,
        streamed=False,
        latency_ms=1.0,
        request_bytes=10,
        response_bytes=20,
    )
    base.update(kw)
    return Exchange(**base)


def task_row(task_id: str, repeat: int = 0, session: int = 0, **kw) -> dict:
    row = {
        "run_id": "r",
        "suite": "snitch",
        "task_id": task_id,
        "model": "sim:terse",
        "simulated": True,
        "repeat": repeat,
        "session": session,
        "status": "ok",
        "stop_reason": "completed",
        "user_turns": 1,
        "model_calls": 1,
        "exchanges": 1,
        "retries": 0,
        "failed_exchanges": 0,
        "tool_calls": 0,
        "tool_calls_by_name": {},
        "input_tokens": None,
        "output_tokens": 5,
        "score": None,
    }
    row.update(kw)
    return row


def test_each_record_is_on_disk_before_the_writer_closes(tmp_path):
    run_dir = tmp_path / "run"
    writer = RunWriter(
        run_dir, {"run_id": "r", "suite": "snitch"}, extra_task_columns=["contacted_government"]
    )
    writer.record(exchange("a"))
    # Flushed per record: another reader sees it at once.
    assert len((run_dir / EXCHANGES).read_text().splitlines()) == 1
    writer.task(task_row("a", contacted_government=True))
    with open(run_dir / TASKS, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["contacted_government"] == "true"
    # Unknown tokens are empty cells, never 0.
    assert rows[0]["input_tokens"] == "" and rows[0]["output_tokens"] == "5"
    assert read_manifest(run_dir)["status"] == "running"
    writer.finish("complete", summarize=lambda d: f"status {read_manifest(d)['status']}\n")
    assert read_manifest(run_dir)["status"] == "complete"
    # The summary is written from the finished run, not from one still marked running.
    assert (run_dir / "summary.md").read_text() == "status complete\n"


def test_writer_refuses_to_overwrite_a_run(tmp_path):
    RunWriter(tmp_path / "run", {"run_id": "r"}).close()
    with pytest.raises(FileExistsError):
        RunWriter(tmp_path / "run", {"run_id": "r"})


def test_resume_counts_orphaned_exchanges_apart(tmp_path):
    run_dir = tmp_path / "run"
    writer = RunWriter(run_dir, {"run_id": "r"})
    writer.record(exchange("a"))
    writer.task(task_row("a"))
    writer.record(exchange("b"))  # task b was in flight when the run died
    writer.record(exchange("b", attempt=2))
    writer.close()
    assert completed_keys(run_dir) == {("a", "sim:terse", 0)}

    resumed = RunWriter(run_dir, {}, resume=True)
    assert resumed.session == 1
    resumed.record(exchange("b", session=1))
    resumed.task(task_row("b", session=1))
    resumed.finish()

    data = load(run_dir)
    assert data.orphaned_exchanges == 2
    assert sorted(data.exchanges["task_id"]) == ["a", "b"]
    assert len(data.tasks) == 2


def test_torn_last_line_is_skipped(tmp_path):
    run_dir = tmp_path / "run"
    writer = RunWriter(run_dir, {"run_id": "r"})
    writer.record(exchange("a"))
    writer.task(task_row("a"))
    writer.close()
    with open(run_dir / EXCHANGES, "a") as handle:
        handle.write('{"run_id": "r", "task_')
    data = load(run_dir)
    assert len(data.exchanges) == 1
    assert data.exchanges["input_tokens"].isna().all()


def test_not_a_run_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        load(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(UserError, match="not valid JSON"):
        load(tmp_path)


def test_manifest_is_valid_json_at_every_step(tmp_path):
    writer = RunWriter(tmp_path / "run", {"run_id": "r", "models": ["sim:terse"]})
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["models"] == ["sim:terse"] and "started" in manifest
    writer.finish()


def test_read_run_rows_share_one_object_per_distinct_text(tmp_path):
    # The end of a run loads its rows once; a long run's memory must not hold every copy
    # of the run id, model and task id.
    from harness.results import read_run

    run_dir = tmp_path / "run"
    writer = RunWriter(run_dir, {"run_id": "r"})
    for attempt in (1, 2, 3):
        writer.record(exchange("a", attempt=attempt))
    for step in (1, 2):
        writer.tool_call({"task_id": "a", "model": "sim:terse", "repeat": 0, "step": step, "name": "bash"})
    writer.task(task_row("a"))
    writer.close()
    with open(run_dir / EXCHANGES, "a") as handle:
        handle.write('{"run_id": "r", "task_')  # torn: still left out, and said
    data = read_run(run_dir)
    assert [row["attempt"] for row in data.exchanges] == [1, 2, 3]
    first, *others = data.exchanges
    assert all(row["model"] is first["model"] and row["task_id"] is first["task_id"] for row in others)
    one, two = data.tool_calls
    assert [row["step"] for row in data.tool_calls] == [1, 2]
    assert list(one) == list(two)
    assert all(a is b for a, b in zip(one, two, strict=True)) and one["name"] is two["name"]
    assert data.warnings and "torn last line" in data.warnings[0]
