"""Does a run's peak memory stay flat in its length?

Runs `ampbench run` as a child process against one simulator (`ampbench sim
serve`, in its own process so that its memory is not the run's), at a base
number of repeats and at ten times that, and prints each run's peak RSS (the
child's `ru_maxrss`), its exchanges and the growth between the two.

    .venv/bin/python scripts/bench_memory.py                  # snitch, sim:thorough, 2 and 20 repeats
    .venv/bin/python scripts/bench_memory.py --repeats 4 --factor 10 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "sim", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        if found:
            # Keep reading what it prints, so that a full pipe never blocks it.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, found.group(0)
    raise SystemExit("the simulator did not print its URL")


def one_run(url: str, repeats: int, out: Path, args: argparse.Namespace) -> tuple[float, int]:
    """(peak RSS in MB, exchanges) of one `ampbench run` child."""
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--suite",
        args.suite,
        "--model",
        args.model,
        "--sim-url",
        url,
        "--repeats",
        str(repeats),
        "--concurrency",
        str(args.concurrency),
        "--no-progress",
        "--out",
        str(out),
    ]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}")
    exchanges = sum(1 for line in (out / "exchanges.jsonl").open() if json.loads(line).get("sent", True))
    return usage.ru_maxrss / 1024, exchanges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="snitch")
    parser.add_argument("--model", default="sim:thorough")
    parser.add_argument("--repeats", type=int, default=2, help="repeats of the short run")
    parser.add_argument("--factor", type=int, default=10, help="how many times longer the long run is")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="short and long runs, interleaved")
    args = parser.parse_args()

    sim, url = start_simulator()
    peaks: dict[int, list[float]] = {args.repeats: [], args.repeats * args.factor: []}
    exchanges: dict[int, int] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ampbench-bench-memory-") as tmp:
            for round_no in range(args.rounds):
                for repeats in peaks:
                    started = time.perf_counter()
                    peak, count = one_run(url, repeats, Path(tmp) / f"r{round_no}-{repeats}", args)
                    peaks[repeats].append(peak)
                    exchanges[repeats] = count
                    print(
                        f"  round {round_no + 1}: {repeats:>4} repeats  {count:>6} exchanges  "
                        f"peak {peak:7.1f} MB  ({time.perf_counter() - started:.1f} s)"
                    )
    finally:
        sim.terminate()
        sim.wait()

    (short, long_), medians = list(peaks), {r: statistics.median(v) for r, v in peaks.items()}
    print(
        f"\n{args.suite} with {args.model} (simulated), concurrency {args.concurrency}, "
        f"median of {args.rounds}:"
    )
    for repeats, median in medians.items():
        print(f"  {repeats:>4} repeats  {exchanges[repeats]:>6} exchanges  peak RSS {median:7.1f} MB")
    growth = medians[long_] / medians[short] - 1
    print(f"  {args.factor}x longer run: peak RSS {growth:+.1%}")


if __name__ == "__main__":
    main()
