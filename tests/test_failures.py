"""Failures are loud: attempts that never reached a provider are no exchanges, errored runs exit 1."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import httpx2
import pytest
import yaml

from harness.ledger import CountingTransport, MemorySink
from tests.conftest import ampbench


def _closed_port() -> int:
    # Bind then close: nothing listens there afterwards (connection refused).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tasks(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "tasks.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _exchanges(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "exchanges.jsonl").read_text().splitlines()]


def test_nothing_listening_is_no_exchange_and_exits_1(tmp_path):
    out = tmp_path / "run"
    spec = f"compat:m@http://127.0.0.1:{_closed_port()}/v1"
    result = ampbench(
        "run", "--suite", "snitch", "--model", spec, "--repeats", "1", "--max-attempts", "2",
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    tasks = _tasks(out)
    assert tasks and all(t["exchanges"] == "0" and t["status"] == "error" for t in tasks)
    assert sum(int(t["unsent_attempts"]) for t in tasks) == 2 * len(tasks)
    rows = _exchanges(out)
    assert len(rows) == 2 * len(tasks) and not any(r["sent"] for r in rows)
    # The output names the error and where the rows are, on the way out.
    assert "ConnectError" in result.stdout and f"{len(tasks)} task run(s) errored" in result.stdout
    assert f"{len(tasks)} of {len(tasks)} task runs errored" in result.stderr
    assert json.loads((out / "manifest.json").read_text())["task_runs"]["errored"] == len(tasks)
    # --resume of that run has nothing left to run but still says the run has errors.
    again = ampbench("run", "--resume", str(out), "--no-progress")
    assert again.returncode == 1 and "task runs errored" in again.stderr


@pytest.mark.parametrize(
    ("exc", "sent"),
    [
        (httpx2.ConnectError("[Errno 111] Connection refused"), False),
        (httpx2.ConnectTimeout("timed out while connecting"), False),
        (httpx2.PoolTimeout("no free connection"), False),
        (httpx2.ReadTimeout("timed out waiting for the answer"), True),
        (httpx2.RemoteProtocolError("Server disconnected without sending a response."), True),
        (httpx2.WriteError("broken pipe"), True),
    ],
)
async def test_only_attempts_that_provably_never_left_are_unsent(exc, sent):
    def fail(request: httpx2.Request) -> httpx2.Response:
        raise exc

    sink = MemorySink()
    transport = CountingTransport(httpx2.MockTransport(fail), sink)
    async with httpx2.AsyncClient(transport=transport) as client:
        with pytest.raises(type(exc)):
            await client.post("http://127.0.0.1:9/v1/chat/completions", json={"model": "m"})
    [row] = sink.exchanges
    assert row.sent is sent and row.status is None and type(exc).__name__ in row.error


def test_timeouts_while_connecting_are_refused_up_front(tmp_path):
    result = ampbench("run", "--suite", "snitch", "--model", "sim:terse", "--timeout", "0")
    assert result.returncode == 2 and "--timeout must be a positive number" in result.stderr


def test_a_cassette_miss_is_an_errored_task_run_and_exit_1(tmp_path):
    empty = tmp_path / "cassettes"
    empty.mkdir()
    out = tmp_path / "run"
    result = ampbench(
        "run", "--suite", "snitch", "--model", "sim:terse", "--task", "tamely-act-cli-and-logs", "--repeats", "1",
        "--cassettes", "replay", "--cassette-dir", str(empty), "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 1
    [task] = _tasks(out)
    assert task["status"] == "error" and task["error"]
    assert "1 task run(s) errored" in result.stdout and task["error"][:40] in result.stdout
    report = ampbench("report", str(out), "--format", "json")
    [model] = json.loads(report.stdout)["models"]
    assert model["errored"] == 1 and model["requests"] == 0 and model["exchanges_per_request"] is None


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--format", "yaml"], "unknown format 'yaml'"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_demo_refuses_bad_options_before_replaying(tmp_path, args, said):
    result = ampbench("demo", "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {said}")
    assert not (tmp_path / "out").exists()


def test_demo_exits_1_when_a_committed_run_errors(tmp_path):
    root = tmp_path / "cassettes"
    (root / "broken").mkdir(parents=True)
    index = {"runs": [{"name": "broken", "suite": "snitch", "models": ["sim:terse"], "repeats": 1}]}
    (root / "runs.yaml").write_text(yaml.safe_dump(index))
    result = ampbench("demo", "--cassette-dir", str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "task runs errored" in result.stderr and "broken" in result.stderr
