"""An interrupted run keeps what it wrote, and `--resume` finishes exactly the rest."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, ampbench


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and a child inherits that: give the
    # run under test the default disposition, so the test does not depend on how it was started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def task_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "tasks.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_interrupt_then_resume(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--suite", "snitch", "--model", "sim:thorough", "--model", "sim-anthropic:terse"]
    # Slow responses only, on every request: the run takes long enough to be interrupted.
    args += [
        "--repeats",
        "3",
        "--concurrency",
        "2",
        "--sim-faults",
        "1.0",
        "--sim-fault-kinds",
        "slow",
        "--no-progress",
    ]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *args, "--out", str(out)],
        cwd=REPO,
        env=env,
        preexec_fn=_default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(task_rows(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "Traceback" not in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    done_before = {(r["task_id"], r["model"], r["repeat"]) for r in task_rows(out)}
    assert 2 <= len(done_before) < 24

    result = ampbench("run", "--resume", str(out), "--no-progress", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = task_rows(out)
    keys = [(r["task_id"], r["model"], r["repeat"]) for r in rows]
    # Every task run exactly once; the ones finished before were not run again.
    assert len(keys) == len(set(keys)) == 4 * 2 * 3
    assert {k for k, r in zip(keys, rows, strict=True) if r["session"] == "0"} == done_before
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["sessions"]) == 1
    # Exchanges of the task runs cut off by the interrupt stay on disk, counted apart.
    report = ampbench("report", str(out), "--format", "json", timeout=120)
    notes = json.loads(report.stdout)["notes"]
    exchanges = [json.loads(line) for line in (out / "exchanges.jsonl").read_text().splitlines()]
    in_tasks = sum(int(r["exchanges"]) + int(r["judge_exchanges"] or 0) for r in rows)
    orphaned = len(exchanges) - in_tasks
    assert orphaned >= 0
    if orphaned:
        assert any(f"{orphaned} exchanges belong to task attempts interrupted" in n for n in notes)


def _small_run(out: Path) -> None:
    result = ampbench(
        "run", "--suite", "snitch", "--model", "sim:terse", "--repeats", "2", "--out", str(out), "--no-progress"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_second_writer_is_refused_while_the_first_holds_the_run(tmp_path):
    from harness.results import RunLock

    out = tmp_path / "run"
    _small_run(out)
    lock = RunLock(out)
    try:
        result = ampbench("run", "--resume", str(out), "--no-progress")
    finally:
        lock.release()
    assert result.returncode == 2
    assert f"is being written by pid {os.getpid()}" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # Once the holder is gone, the same command goes through (nothing left to run).
    assert ampbench("run", "--resume", str(out), "--no-progress").returncode == 0


def test_torn_last_lines_are_cut_reported_and_their_task_run_runs_again(tmp_path):
    out = tmp_path / "run"
    _small_run(out)
    rows = task_rows(out)
    tasks_csv = (out / "tasks.csv").read_text()
    lines = tasks_csv.splitlines(keepends=True)
    # A crash mid-write: the last task row is half written, so is one more exchange line.
    (out / "tasks.csv").write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    with open(out / "exchanges.jsonl", "a") as handle:
        handle.write('{"run_id": "x", "task_id": "to')
    report = ampbench("report", str(out), "--format", "json")
    assert report.returncode == 0, report.stderr
    notes = json.loads(report.stdout)["notes"]
    assert any("tasks.csv: a torn last row" in n for n in notes)
    assert any("exchanges.jsonl: a torn last line" in n for n in notes)

    resumed = ampbench("run", "--resume", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "cut a torn last line of tasks.csv" in resumed.stderr
    assert "cut a torn last line of exchanges.jsonl" in resumed.stderr
    after = task_rows(out)
    keys = [(r["task_id"], r["model"], r["repeat"]) for r in after]
    assert len(keys) == len(set(keys)) == len(rows)
    # Every exchange line parses: nothing was glued onto the fragment.
    for line in (out / "exchanges.jsonl").read_text().splitlines():
        json.loads(line)
    assert after[-1]["session"] == "1"


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--suite", "snitch", "--model", "sim:terse", "--repeats", "4", "--concurrency", "1"]
    args += ["--sim-faults", "1.0", "--sim-fault-kinds", "slow", "--no-progress", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not task_rows(out) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("run interrupted:")
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
