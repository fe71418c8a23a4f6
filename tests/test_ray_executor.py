"""`--executor ray` on a two-node Ray cluster on this machine, held to the simulator's own count.

The cluster (ray.cluster_utils.Cluster: a head node and a worker node, each a raylet of its
own) is pinned to 127.0.0.1. The executor spreads its workers over both nodes, so task runs
land on the worker node too, which one test kills mid-run.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.results import read_manifest, read_run
from harness.runner import RunConfig, Runner
from tests.test_run_sim import task_counts as run_sim_task_counts

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.cluster

MODELS = ["sim:terse", "sim-anthropic:thorough"]


@pytest.fixture(scope="module")
def cluster():
    from harness.ray_executor import loopback_cluster

    # The head has 1 CPU, the worker 2: the executor's workers take none, and spread over both.
    with loopback_cluster(1, head_cpus=1) as (head, (worker,)):
        yield head, worker


def config(tmp_path: Path, name: str, **changes) -> RunConfig:
    base = RunConfig(
        suite="snitch",
        models=list(MODELS),
        repeats=2,
        concurrency=4,
        out=str(tmp_path / name),
        sim_faults=0.2,
        sim_seed=7,
    )
    return replace(base, **changes)


def run(runner: Runner) -> tuple[Path, dict]:
    run_dir = runner.run()
    return run_dir, runner._sim.stats()


def task_counts(run_dir: Path) -> dict[tuple[str, str, str], tuple]:
    """The local-vs-simulator counts of test_run_sim, and the judge's exchanges."""
    with open(run_dir / "tasks.csv", newline="") as handle:
        judged = {
            (r["task_id"], r["model"], r["repeat"]): r["judge_exchanges"] for r in csv.DictReader(handle)
        }
    return {key: (*counts, judged[key]) for key, counts in run_sim_task_counts(run_dir).items()}


def ledger(run_dir: Path) -> int:
    return sum(1 for line in (run_dir / "exchanges.jsonl").read_text().splitlines() if line.strip())


def test_a_cluster_run_counts_what_a_local_run_counts(cluster, tmp_path):
    from harness.ray_executor import RayRunner

    # With an LLM judge too: its exchanges are made on the nodes as well.
    local_dir, local_stats = run(Runner(config(tmp_path, "local", judge="sim:terse"), progress=False))
    ray_dir, ray_stats = run(
        RayRunner(
            config(tmp_path, "ray", judge="sim:terse", executor="ray", ray_address=cluster[0].address),
            progress=False,
        )
    )
    assert task_counts(ray_dir) == task_counts(local_dir)
    assert len(task_counts(ray_dir)) == 4 * len(MODELS) * 2
    # Every attempt the simulator answered is one ledger row, written by the driver alone.
    assert ledger(ray_dir) == ray_stats["requests"] == local_stats["requests"]
    assert ray_stats["by_status"] == local_stats["by_status"]
    assert read_manifest(ray_dir)["config"]["executor"] == "ray"
    assert read_run(ray_dir).orphaned_exchanges == 0


def test_the_concurrency_limit_holds_across_the_cluster(cluster, tmp_path):
    from harness.ray_executor import RayRunner

    runner = RayRunner(
        config(
            tmp_path, "c2", executor="ray", ray_address=cluster[0].address, concurrency=2, sim_faults=0.05
        ),
        progress=False,
    )
    _, stats = run(runner)
    assert 1 <= stats["peak_in_flight"] <= 2


def test_a_node_that_dies_mid_task_loses_no_task_run(cluster, tmp_path):
    from harness.ray_executor import RayRunner

    head, worker = cluster
    killed: list[str] = []

    def kill_the_worker(key, kind, node_id):
        if not killed and kind == "exchange" and node_id == worker.node_id:
            killed.append(key)
            head.remove_node(worker, allow_graceful=False)

    runner = RayRunner(
        config(tmp_path, "kill", executor="ray", ray_address=head.address, concurrency=8), progress=False
    )
    runner.on_item = kill_the_worker
    run_dir, stats = run(runner)
    assert killed, "no task run reached the worker node"
    counts = task_counts(run_dir)
    assert len(counts) == 4 * len(MODELS) * 2  # every task run exactly once
    with open(run_dir / "tasks.csv", newline="") as handle:
        assert all(r["status"] == "ok" for r in csv.DictReader(handle))
    manifest = read_manifest(run_dir)
    lost = [s for s in manifest.get("sessions", []) if "lost" in s.get("reason", "")]
    assert lost and manifest["status"] == "complete"
    data = read_run(run_dir)
    assert data.orphaned_exchanges > 0  # what the lost attempts sent is kept, counted apart
    # A request in flight when its node died reached the simulator but never the driver.
    assert 0 <= stats["requests"] - ledger(run_dir) <= len(lost)


def test_an_unknown_executor_or_missing_ray_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown executor 'slurm'"):
        Runner(config(tmp_path, "x", executor="slurm")).prepare()
    with pytest.raises(UserError, match="--ray-address is for --executor ray"):
        Runner(config(tmp_path, "y", ray_address="127.0.0.1:6379")).prepare()
    with pytest.raises(UserError, match="--rpm is a positive number"):
        Runner(config(tmp_path, "w", rpm=0)).prepare()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(UserError, match=r"pip install 'ampbench\[ray\]'"):
        Runner(config(tmp_path, "z", executor="ray")).prepare()


def test_cassettes_recorded_on_the_nodes_replay_locally(cluster, tmp_path):
    from harness.ray_executor import RayRunner

    cassettes = str(tmp_path / "cassettes")
    recorded, _ = run(
        RayRunner(
            config(
                tmp_path,
                "rec",
                executor="ray",
                ray_address=cluster[0].address,
                cassettes="record",
                cassette_dir=cassettes,
            ),
            progress=False,
        )
    )
    replayed = Runner(
        config(tmp_path, "rep", cassettes="replay", cassette_dir=cassettes, sim_faults=0.0), progress=False
    ).run()
    assert task_counts(replayed) == task_counts(recorded)
    assert ledger(replayed) == ledger(recorded)


def test_resume_finishes_a_cluster_run_with_the_same_executor(cluster, tmp_path):
    from harness.ray_executor import RayRunner
    from tests.conftest import ampbench

    run_dir = RayRunner(
        config(tmp_path, "res", executor="ray", ray_address=cluster[0].address), progress=False
    ).run()
    # As if the run had been stopped before its last three task runs finished.
    lines = (run_dir / "tasks.csv").read_text().splitlines(keepends=True)
    (run_dir / "tasks.csv").write_text("".join(lines[:-3]))
    result = ampbench("run", "--resume", str(run_dir), "--no-progress", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = task_counts(run_dir)
    assert len(counts) == 4 * len(MODELS) * 2
    with open(run_dir / "tasks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(counts)  # every task run once
    assert read_manifest(run_dir)["config"]["executor"] == "ray"
    assert read_run(run_dir).orphaned_exchanges > 0  # the three cut task runs' first exchanges


def test_every_request_of_every_node_goes_through_one_budget(cluster, tmp_path):
    from harness.ray_executor import RayRunner

    runner = RayRunner(
        config(tmp_path, "rpm", executor="ray", ray_address=cluster[0].address, rpm=6000), progress=False
    )
    run_dir, stats = run(runner)
    # The simulator's own count: every attempt it saw was admitted by the cluster's pacer first.
    assert sum(runner.paced.values()) == stats["requests"] == ledger(run_dir)
    assert set(runner.paced) == {"sim", "sim-anthropic"}


def test_a_node_that_does_not_see_the_cassette_dir_refuses(tmp_path):
    import asyncio
    import queue
    from dataclasses import asdict

    from harness.ray_executor import _execute

    payload = {
        "config": asdict(config(tmp_path, "m", cassettes="record", cassette_dir=str(tmp_path / "cas"))),
        "cassette_marker": ".ampbench-driver-elsewhere",
        "task_id": "tamely-act-email-and-logs",
    }
    with pytest.raises(UserError, match="is not shared with this node"):
        asyncio.run(_execute(payload, queue.SimpleQueue()))
