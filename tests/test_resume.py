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
