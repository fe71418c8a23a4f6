"""What does the guard cost per command: set up for every command, or once per session?

    .venv/bin/python scripts/bench_guard.py [--commands 30] [--guard bwrap --guard unshare] [--command 'echo hi']

For each guard that works here it times, per command (median and mean over
`--commands` runs, after one warm-up):

* ``bash -c``: the command alone, no guard, no reaper: the floor;
* ``guard per command``: a fresh guard around every command (new namespaces,
  every mount remounted read-only, masks), as the local backend did before its
  session: the cost `make run` paid for every agent command, git call and test
  run. (A lower bound: the old per-command reaper started Python on top.)
* ``session``: `LocalBackend.run` as it is: the command sent to the backend's
  confined session, with its reaper, its cgroup (as root) and its output read
  to EOF; and the same without resource limits (no cgroup);
* ``session start``: the first command of a backend, which starts the guard;
* with ``--baseline REV`` (a git revision from before the sessions, e.g. the
  commit before they came), ``backend at REV``: `LocalBackend.run` of that
  revision's `suites/swe/execution.py`, guard, reaper and cgroup per command.

Figures on a loaded machine are high and noisy; compare the rows with one
another. `time make run` gives the figure that matters.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

from suites.swe.execution import _SYSTEM_PATH, LocalBackend, _masks_for, _wrap, available_guards
from suites.swe.limits import DEFAULT_LIMITS, NO_LIMITS


def _times(run: Callable[[], object], n: int) -> list[float]:
    run()  # warm-up: page cache, the guard's first start
    out = []
    for _ in range(n):
        started = time.perf_counter()
        run()
        out.append(time.perf_counter() - started)
    return out


def _row(label: str, seconds: list[float]) -> str:
    return f"  {label:<30} {statistics.median(seconds) * 1000:9.1f} {statistics.fmean(seconds) * 1000:9.1f}"


def _baseline(rev: str) -> types.ModuleType:
    """`suites/swe/execution.py` as it was at git revision `rev`, as a module of its own."""
    repo = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{rev}:suites/swe/execution.py"], cwd=repo, capture_output=True, check=True
    ).stdout
    module = types.ModuleType("ampbench_baseline_execution")
    module.__file__ = f"{rev}:suites/swe/execution.py"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def bench(guard: str, command: str, n: int, baseline: types.ModuleType | None = None) -> list[str]:
    bash = shutil.which("bash") or "/bin/bash"
    env = {"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8"}
    lines = [f"{guard}:", f"  {'per command':<30} {'median ms':>9} {'mean ms':>9}"]
    with tempfile.TemporaryDirectory(prefix="ampbench-bench-guard-") as td:
        root = os.path.realpath(td)

        def plain() -> None:
            subprocess.run([bash, "-c", command], cwd=root, env=env, capture_output=True, check=True)

        lines.append(_row("bash -c", _times(plain, n)))
        if guard != "none":
            argv = _wrap(guard, [bash, "-c", command], root=root, cwd=root, masks=_masks_for(root))

            def fresh_guard() -> None:
                subprocess.run(argv, cwd=root, env=env, capture_output=True, check=True)

            lines.append(_row("guard per command", _times(fresh_guard, n)))
        if baseline is not None:
            old = baseline.LocalBackend(root, guard=guard)
            lines.append(
                _row(f"backend at {baseline.__file__.split(':')[0]}", _times(lambda: old.run(command), n))
            )
        for label, limits in (("session", DEFAULT_LIMITS), ("session, no cgroup limits", NO_LIMITS)):
            backend = LocalBackend(root, guard=guard, limits=limits)
            try:
                lines.append(_row(label, _times(lambda b=backend: b.run(command), n)))
            finally:
                backend.close()

        def first_command() -> None:
            backend = LocalBackend(root, guard=guard)
            try:
                backend.run(command)
            finally:
                backend.close()

        lines.append(_row("session start + 1 command", _times(first_command, max(3, n // 5))))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=30, help="timed commands per row")
    parser.add_argument("--guard", action="append", help="a guard to time (default: every one that works)")
    parser.add_argument("--command", default="echo hi", help="the shell command to run")
    parser.add_argument("--baseline", metavar="REV", help="also time the local backend of this git revision")
    args = parser.parse_args()
    baseline = _baseline(args.baseline) if args.baseline else None
    working = [g for g, ok in available_guards().items() if ok]
    guards = args.guard or working
    load = os.getloadavg()[0]
    print(
        f"{args.commands} commands per row, `{args.command}`; load average {load:.1f} on {os.cpu_count()} cores"
    )
    for guard in guards:
        if guard not in working:
            print(f"{guard}: does not work here, skipped")
            continue
        print("\n".join(bench(guard, args.command, args.commands, baseline)))


if __name__ == "__main__":
    main()
