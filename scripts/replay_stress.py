"""Replay every committed run many times, several at once, and check that every replay is identical.

The committed runs (cassettes/runs.yaml) replay offline; the SWE runs re-execute every
agent command and every graded test for real, since their outputs are part of the next
request. A replay is deterministic only if those outputs are, however busy the machine
is: this script loads the machine (K replays at once, each in its own process) and
compares, per run, the results of N replays:

* tasks.csv, every column but the timings (one row per task run, sorted);
* the sequence of exchanges of every task run (exchanges.jsonl rows in order: step,
  attempt, status, tokens, request and response bytes...) and of its tool calls
  (tool_calls.jsonl: tool, ok, output bytes), timings left out.

Every replay must also be complete: each task run ok, as many exchanges as the
cassettes hold. Prints one line per run and exits 1 on any difference or failure.

    .venv/bin/python scripts/replay_stress.py                  # 20 replays per run, 2 at once
    .venv/bin/python scripts/replay_stress.py -n 5 -k 3 --run swe-smollm2
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import multiprocessing
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness import committed  # noqa: E402
from harness.cassettes import iter_cassette_files  # noqa: E402
from suites.swe.suite import forget_shared_verdicts  # noqa: E402

# Columns and fields whose values are measurements of time, not results.
VOLATILE = re.compile(r"(latency|duration|wall|elapsed|ttft|time|started|ended|(^|_)ts$|_at$|_ms$|_s$)")
TASK_KEY = ("task_id", "model", "repeat")


def _stable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not VOLATILE.search(k)}


def _task_of(row: dict[str, Any]) -> str:
    return "/".join(str(row.get(k)) for k in TASK_KEY)


def fingerprint(run_dir: Path) -> dict[str, Any]:
    """What must be identical between two replays of one run."""
    with open(run_dir / "tasks.csv", newline="", encoding="utf-8") as handle:
        tasks = sorted((_stable(r) for r in csv.DictReader(handle)), key=_task_of)
    sequences: dict[str, dict[str, list[str]]] = {}
    for name in ("exchanges", "tool_calls"):
        per_task: dict[str, list[str]] = defaultdict(list)
        path = run_dir / f"{name}.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    per_task[_task_of(row)].append(json.dumps(_stable(row), sort_keys=True))
        sequences[name] = dict(sorted(per_task.items()))
    return {"tasks": tasks, **sequences}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A short description of where two fingerprints differ."""
    if len(a["tasks"]) != len(b["tasks"]):
        return f"tasks.csv has {len(a['tasks'])} vs {len(b['tasks'])} rows"
    for ra, rb in zip(a["tasks"], b["tasks"], strict=True):
        for column in sorted(set(ra) | set(rb)):
            if ra.get(column) != rb.get(column):
                return f"tasks.csv {_task_of(ra)}: {column} = {ra.get(column)!r} vs {rb.get(column)!r}"
    for name in ("exchanges", "tool_calls"):
        for task in sorted(set(a[name]) | set(b[name])):
            sa, sb = a[name].get(task, []), b[name].get(task, [])
            if sa != sb:
                at = next(
                    (i for i, (x, y) in enumerate(zip(sa, sb, strict=False)) if x != y), min(len(sa), len(sb))
                )
                return f"{name} of {task} differ at row {at + 1} ({len(sa)} vs {len(sb)} rows)"
    return "fingerprints differ"


def expected_exchanges(root: Path, name: str) -> int:
    return sum(len(json.loads(p.read_text())["interactions"]) for p in iter_cassette_files(root / name))


def replay_once(root: str, name: str, index: int, out_root: str) -> dict[str, Any]:
    """One replay, in a worker process: its fingerprint and wall time."""
    runs = {r.name: r for r in committed.load_index(Path(root))}
    out = Path(out_root) / f"{name}-{index:03d}"
    # A worker replays many times: each replay runs its own grading, as it would alone.
    forget_shared_verdicts()
    started = time.monotonic()
    run_dir = committed.replay(runs[name], Path(root), out)
    wall = time.monotonic() - started
    fp = fingerprint(run_dir)
    statuses = [t.get("status") for t in fp["tasks"]]
    exchanges = sum(len(rows) for rows in fp["exchanges"].values())
    errors = [t.get("error") for t in fp["tasks"] if t.get("status") != "ok"]
    shutil.rmtree(out, ignore_errors=True)
    return {
        "name": name,
        "index": index,
        "wall_s": wall,
        "fingerprint": fp,
        "all_ok": all(s == "ok" for s in statuses),
        "exchanges": exchanges,
        "errors": errors[:3],
    }


@dataclass
class Summary:
    name: str
    replays: int = 0
    identical: bool = True
    complete: bool = True
    walls: list[float] | None = None
    note: str = ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--replays", type=int, default=20, help="replays per run (default 20)")
    parser.add_argument("-k", "--concurrency", type=int, default=2, help="replays at once (default 2)")
    parser.add_argument("--run", action="append", help="only this committed run (repeatable)")
    parser.add_argument("--cassette-dir", type=Path, default=REPO / "cassettes", help="holds runs.yaml")
    args = parser.parse_args(argv)
    if args.replays < 1 or args.concurrency < 1:
        parser.error("--replays and --concurrency must be at least 1")
    root = args.cassette_dir.resolve()
    runs = committed.load_index(root)
    if args.run:
        unknown = sorted(set(args.run) - {r.name for r in runs})
        if unknown:
            parser.error(f"not in {root / committed.INDEX}: {', '.join(unknown)}")
        runs = [r for r in runs if r.name in args.run]
    expected = {r.name: expected_exchanges(root, r.name) for r in runs}
    summaries = {r.name: Summary(r.name, walls=[]) for r in runs}
    reference: dict[str, dict[str, Any]] = {}
    # Interleaved, so that different runs (and the SWE runs with each other) overlap.
    jobs = [(r.name, i) for i in range(args.replays) for r in runs]
    print(
        f"replaying {len(runs)} committed runs x {args.replays}, {args.concurrency} at once "
        f"({len(jobs)} replays)",
        file=sys.stderr,
    )
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="ampbench-replay-stress-") as out_root,
        ProcessPoolExecutor(args.concurrency, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        futures = [pool.submit(replay_once, str(root), name, i, out_root) for name, i in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            s = summaries[result["name"]]
            s.replays += 1
            assert s.walls is not None
            s.walls.append(result["wall_s"])
            if not result["all_ok"] or result["exchanges"] != expected[s.name]:
                if s.complete:
                    s.note = (
                        f"replay {result['index']}: {result['exchanges']}/{expected[s.name]} exchanges, "
                        f"errors: {result['errors']}"
                    )
                s.complete = False
            ref = reference.setdefault(s.name, result["fingerprint"])
            if result["fingerprint"] != ref and s.identical:
                s.identical = False
                s.note = f"replay {result['index']}: {first_difference(ref, result['fingerprint'])}"
            print(
                f"  [{done}/{len(jobs)}] {s.name} #{result['index']}: {result['wall_s']:.1f} s, "
                f"fingerprint {digest(result['fingerprint'])}",
                file=sys.stderr,
            )
    total = time.monotonic() - started

    header = (
        f"{'run':<20} {'replays':>7} {'identical':>9} {'complete':>8} {'wall mean s':>11} {'wall max s':>10}"
    )
    print(header)
    print("-" * len(header))
    for s in summaries.values():
        walls = s.walls or [0.0]
        print(
            f"{s.name:<20} {s.replays:>7} {'yes' if s.identical else 'NO':>9} "
            f"{'yes' if s.complete else 'NO':>8} {sum(walls) / len(walls):>11.1f} {max(walls):>10.1f}"
        )
        if s.note:
            print(f"    {s.note}")
    print(f"{len(jobs)} replays, {args.concurrency} at once, in {total:.0f} s")
    failed = [s.name for s in summaries.values() if not (s.identical and s.complete)]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
