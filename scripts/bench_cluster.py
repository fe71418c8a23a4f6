"""Local executor against a two-node Ray cluster on this machine, on the same work.

    .venv/bin/python scripts/bench_cluster.py [--repeats 4,16] [--rounds 2] [--concurrency 8]

The work: the snitch suite against the in-process simulator (two models, each of
`--repeats` repeats: 4 tasks x 2 models x repeats task runs). The cluster is started
once (its start-up is reported apart), then the two executors run interleaved on each
size, `--rounds` times. Printed per executor: median wall time per size, and from the two
sizes the fixed cost of a run and the cost per further task run; the overhead of the
cluster is the difference; the counts of both executors must be equal.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.runner import RunConfig, Runner


def counts(run_dir: Path) -> dict:
    with open(run_dir / "tasks.csv", newline="") as handle:
        return {
            (r["task_id"], r["model"], r["repeat"]): (r["exchanges"], r["model_calls"])
            for r in csv.DictReader(handle)
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", default="4,16", help="two sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    from harness.ray_executor import loopback_cluster

    started = time.monotonic()
    with loopback_cluster(1) as (cluster, _):
        startup = time.monotonic() - started
        walls, seen, task_runs, sizes = measure(cluster.address, args)
    report(walls, seen, task_runs, sizes, startup, args.concurrency)


def measure(address: str, args: argparse.Namespace) -> tuple[dict, dict, dict, list[int]]:
    from harness.ray_executor import RayRunner

    out = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    sizes = [int(x) for x in args.repeats.split(",")]
    walls: dict[tuple[str, int], list[float]] = {}
    seen: dict[tuple[str, int], dict] = {}
    task_runs: dict[int, int] = {}
    for round_no in range(args.rounds):
        for repeats in sizes:
            for executor in ("local", "ray"):
                config = RunConfig(
                    suite="snitch",
                    models=["sim:terse", "sim-anthropic:thorough"],
                    repeats=repeats,
                    concurrency=args.concurrency,
                    out=str(out / f"{executor}-{repeats}-{round_no}"),
                    executor=executor,
                    ray_address=address if executor == "ray" else None,
                )
                runner = (RayRunner if executor == "ray" else Runner)(config, progress=False)
                began = time.monotonic()
                run_dir = runner.run()
                walls.setdefault((executor, repeats), []).append(time.monotonic() - began)
                seen[(executor, repeats)] = counts(run_dir)
                task_runs[repeats] = len(seen[(executor, repeats)])
    return walls, seen, task_runs, sizes


def report(
    walls: dict, seen: dict, task_runs: dict, sizes: list[int], startup: float, concurrency: int
) -> None:
    print(f"cluster start-up (2 nodes, 127.0.0.1): {startup:.1f} s; concurrency {concurrency}")
    small, large = sizes[0], sizes[-1]
    fits = {}
    for executor in ("local", "ray"):
        med = {n: statistics.median(walls[(executor, n)]) for n in sizes}
        per_run = (med[large] - med[small]) / (task_runs[large] - task_runs[small])
        fixed = med[small] - per_run * task_runs[small]
        fits[executor] = (fixed, per_run)
        shown = ", ".join(f"{task_runs[n]} task runs {med[n]:.2f} s" for n in sizes)
        print(f"{executor:5}: {shown}; fixed {fixed:.2f} s, {per_run * 1000:.1f} ms per further task run")
    print(
        f"cluster overhead: {fits['ray'][0] - fits['local'][0]:+.2f} s per run, "
        f"{(fits['ray'][1] - fits['local'][1]) * 1000:+.1f} ms per task run"
    )
    print(f"same counts: {all(seen[('local', n)] == seen[('ray', n)] for n in sizes)}")


if __name__ == "__main__":
    main()
