"""End to end: `ampbench run` against a running simulator, held to the simulator's own count.

The simulator counts every request it receives on the server side; the
ledger counts every attempt on the client side. They must agree exactly,
with faults injected (retries, 5xx, 529, dropped connections) and with
streaming on.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ampbench

FAKE_ANTHROPIC_KEY = "sk-ant-test-FAKE-KEY-0123456789abcdef"
FAKE_OPENAI_KEY = "sk-test-FAKE-OPENAI-KEY-0123456789abcdef"
MODELS = ["anthropic:thorough", "openai:terse", "openai-responses:reasoner"]


class ServedSim:
    """`ampbench sim serve` in its own process, as a user would start it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/_sim/stats", timeout=10) as response:
            return json.loads(response.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def sim_serve(faults: float, seed: int) -> Iterator[ServedSim]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "sim",
            "serve",
            "--port",
            str(port),
            "--faults",
            str(faults),
            "--seed",
            str(seed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    served = ServedSim(f"http://127.0.0.1:{port}")
    try:
        for _ in range(100):
            try:
                served.stats()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("ampbench sim serve did not come up")
        yield served
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sim_env(server: ServedSim) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": server.url,
        "OPENAI_BASE_URL": server.url + "/v1",
        "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
    }


def run_against(server: ServedSim, out: Path, *extra: str, repeats: int = 3, concurrency: int = 8):
    args = ["run", "--suite", "snitch", "--repeats", str(repeats), "--concurrency", str(concurrency)]
    for m in MODELS:
        args += ["--model", m]
    result = ampbench(*args, "--out", str(out), "--no-progress", *extra, env=sim_env(server))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def task_counts(run_dir: Path) -> dict[tuple[str, str, str], tuple]:
    with open(run_dir / "tasks.csv", newline="") as handle:
        return {
            (r["task_id"], r["model"], r["repeat"]): (
                r["exchanges"],
                r["retries"],
                r["model_calls"],
                r["tool_calls"],
                r["input_tokens"],
                r["output_tokens"],
                r["stop_reason"],
                r["score"],
            )
            for r in csv.DictReader(handle)
        }


@pytest.fixture
def faulty_sim():
    with sim_serve(faults=0.2, seed=11) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_ledger_rows_equal_the_simulator_count(faulty_sim, tmp_path, stream):
    out = tmp_path / "run"
    run_against(faulty_sim, out, *(["--stream"] if stream else []))
    stats = faulty_sim.stats()
    exchanges = rows(out / "exchanges.jsonl")
    assert len(exchanges) == stats["requests"]
    # Faults happened and were retried: some attempts > 1, some non-200 statuses or dropped connections.
    assert any(e["attempt"] > 1 for e in exchanges)
    assert sum(1 for e in exchanges if e["status"] != 200) == stats["requests"] - stats["by_status"].get(
        "200", 0
    )
    # Every exchange is attributed to a task run, and tasks.csv sums them exactly.
    with open(out / "tasks.csv", newline="") as handle:
        tasks = list(csv.DictReader(handle))
    assert len(tasks) == 4 * 3 * len(MODELS)
    assert sum(int(t["exchanges"]) for t in tasks) == len(exchanges)
    assert sum(int(t["retries"]) for t in tasks) == sum(1 for e in exchanges if e["attempt"] > 1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    # The simulator's answers are labelled simulated.
    assert all(t["simulated"] == "true" for t in tasks)
    assert "(simulated)" in (out / "summary.md").read_text()


def test_per_task_counts_do_not_depend_on_concurrency(tmp_path):
    counts = []
    for concurrency in (1, 8):
        with sim_serve(faults=0.2, seed=11) as server:
            run_against(server, tmp_path / f"c{concurrency}", repeats=2, concurrency=concurrency)
        counts.append(task_counts(tmp_path / f"c{concurrency}"))
    assert counts[0] == counts[1]


def test_api_keys_never_reach_any_result_file(faulty_sim, tmp_path):
    out = tmp_path / "run"
    run_against(faulty_sim, out, repeats=1)
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert FAKE_ANTHROPIC_KEY.encode() not in data, path
            assert FAKE_OPENAI_KEY.encode() not in data, path


def test_a_run_writes_its_summary_and_report_without_pandas(tmp_path):
    """summary.md and the closing report come from harness.metrics' pure-Python figures: a run
    imports neither pandas nor numpy (nor rich's progress bar under --no-progress)."""
    script = (
        "import sys\n"
        "from harness.cli import main\n"
        "sys.argv = ['ampbench', 'run', '--suite', 'snitch', '--model', 'sim:terse', '--repeats', '1',"
        f" '--no-progress', '--out', {str(tmp_path / 'run')!r}]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    heavy = sorted(m for m in ('pandas', 'numpy', 'rich.progress') if m in sys.modules)\n"
        "    print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "| sim:terse (simulated) |" in summary
    assert "exch/request" in result.stdout
