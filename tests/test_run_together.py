"""Several runs in one event loop (`harness.runner.run_together`, behind `ampbench demo`)."""

from __future__ import annotations

import asyncio
import csv
import json
import urllib.request
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.runner import RunConfig, Runner, run_together
from tests.test_run_sim import rows, sim_serve


def config(out: Path, url: str, *models: str, repeats: int = 2, concurrency: int = 4) -> RunConfig:
    # suite, models, repeats, concurrency; against the simulator served at `url`.
    return RunConfig("snitch", list(models), repeats, concurrency, out=str(out), sim_url=url)


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_runs_together_share_the_slots_and_keep_their_counts(tmp_path, monkeypatch):
    in_flight: list[tuple[str, str]] = []
    peak = 0
    overlapped = False
    real = Runner._run_one

    async def watched(self, suite, task, spec, *args):
        nonlocal peak, overlapped
        key = (self.config.out, task.id)
        in_flight.append(key)
        peak = max(peak, len(in_flight))
        overlapped |= len({out for out, _ in in_flight}) > 1
        try:
            await asyncio.sleep(0.01)  # hold the slot a moment, so that slots are contended
            return await real(self, suite, task, spec, *args)
        finally:
            in_flight.remove(key)

    monkeypatch.setattr(Runner, "_run_one", watched)
    with sim_serve(faults=0.2, seed=5) as server:
        runners = [
            Runner(config(tmp_path / "a", server.url, "sim:terse", "sim-anthropic:thorough"), progress=False),
            Runner(config(tmp_path / "b", server.url, "sim-responses:reasoner"), progress=False),
        ]
        dirs = run_together(runners, concurrency=3)
        stats = server.stats()
    assert dirs == [tmp_path / "a", tmp_path / "b"]
    # Each run alone would have 4 task runs in flight; together they have the 3 slots shared.
    assert peak == 3 and overlapped
    exchanges = [rows(d / "exchanges.jsonl") for d in dirs]
    # Every request the simulator served is in exactly one run's ledger.
    assert sum(map(len, exchanges)) == stats["requests"]
    for run_dir, run_rows in zip(dirs, exchanges, strict=True):
        assert manifest(run_dir)["status"] == "complete"
        assert {r["run_id"] for r in run_rows} == {manifest(run_dir)["run_id"]}
        with open(run_dir / "tasks.csv", newline="") as handle:
            tasks = list(csv.DictReader(handle))
        assert sum(int(t["exchanges"]) for t in tasks) == len(run_rows)
        # The rows loaded once for summary.md are the finished run's.
        runner = runners[dirs.index(run_dir)]
        assert runner.data is not None and len(runner.data.exchanges) == len(run_rows)


def test_bad_input_in_any_run_writes_nothing(tmp_path):
    runners = [
        Runner(config(tmp_path / "a", "http://127.0.0.1:9", "sim:terse"), progress=False),
        Runner(config(tmp_path / "b", "http://127.0.0.1:9", "sim:terse", repeats=0), progress=False),
    ]
    with pytest.raises(UserError, match="--repeats"):
        run_together(runners)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_failing_run_ends_the_others_as_interrupted_but_not_the_finished(tmp_path, monkeypatch):
    real = Runner._run_all
    first_done = asyncio.Event()

    async def run_all(self, *args):
        if self.config.out.endswith("b"):
            await first_done.wait()
            raise RuntimeError("the run broke")
        if self.config.out.endswith("c"):
            await asyncio.sleep(3600)  # still going when b breaks
        await real(self, *args)
        first_done.set()

    monkeypatch.setattr(Runner, "_run_all", run_all)
    with sim_serve(faults=0.0, seed=1) as server:
        runners = [
            Runner(config(tmp_path / name, server.url, "sim:terse", repeats=1), progress=False)
            for name in ("a", "b", "c")
        ]
        with pytest.raises(RuntimeError, match="the run broke"):
            run_together(runners, concurrency=2)
    # a finished before b broke: it stays complete; b and c are said to be interrupted.
    assert [manifest(tmp_path / n)["status"] for n in ("a", "b", "c")] == [
        "complete",
        "interrupted",
        "interrupted",
    ]


def test_an_in_process_simulator_is_stopped_and_still_gives_its_count(tmp_path):
    run = RunConfig("snitch", ["sim:terse"], 2, 4, out=str(tmp_path / "a"), sim_faults=0.3, sim_seed=3)
    runner = Runner(run, progress=False)
    run_dir = runner.run()
    assert runner._sim is not None and runner._sim.url  # the run's own simulator, stopped at its end
    with pytest.raises(OSError):
        urllib.request.urlopen(runner._sim.url + "/_sim/stats", timeout=5)
    assert len(rows(run_dir / "exchanges.jsonl")) == runner._sim.stats()["requests"] > 8
