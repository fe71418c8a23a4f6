"""Time `ampbench compare` on many synthetic runs and report its memory.

Writes RUNS run directories with `RunWriter` (EXCHANGES exchanges in total,
spread over models and task runs, each exchange row carrying a raw `usage`
object and headers like a live run), then times each stage of the comparison
and measures the peak of Python allocations with tracemalloc in a second pass
(tracemalloc slows the code it watches, so times come from the first pass).

    .venv/bin/python scripts/bench_compare.py                # 50 runs, 100,000 exchanges
    .venv/bin/python scripts/bench_compare.py --runs 10 --exchanges 20000 --keep /tmp/bench
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import compare as cmp
from harness.results import RunWriter

MODELS = ("anthropic:claude-sonnet-4-5", "openai:gpt-4o", "sim:terse", "sim-anthropic:thorough")


def write_run(run_dir: Path, index: int, exchanges: int, rng: random.Random) -> int:
    """One run of the snitch or swe suite with two models; about `exchanges` exchange rows."""
    suite = "snitch" if index % 2 == 0 else "swe"
    models = MODELS[index % 2 * 2 : index % 2 * 2 + 2] if index % 3 else MODELS[:2]
    writer = RunWriter(run_dir, {"run_id": run_dir.name, "suite": suite, "kind": "run"})
    written = 0
    task_no = 0
    while written < exchanges:
        task_no += 1
        for model in models:
            base = {
                "run_id": run_dir.name,
                "task_id": f"t{task_no}",
                "model": model,
                "repeat": 0,
                "session": 0,
            }
            steps = rng.randint(5, 40)
            context, agent, ok, tools = rng.randint(2000, 4000), 0, [], Counter()
            for step in range(1, steps + 1):
                for attempt in range(1, 3 if rng.random() < 0.05 else 2):
                    success = attempt == 2 or rng.random() >= 0.05
                    names = [rng.choice(["bash", "edit", "write_logs"])] if success and step < steps else []
                    row = {
                        **base,
                        "step": step,
                        "role": "agent",
                        "attempt": attempt,
                        "endpoint": "/v1/messages",
                        "method": "POST",
                        "host": "api.example.invalid",
                        "status": 200 if success else 529,
                        "streamed": False,
                        "latency_ms": rng.uniform(300, 9000),
                        "request_bytes": context * 4,
                        "response_bytes": 1500,
                        "input_tokens": context if success else None,
                        "output_tokens": rng.randint(20, 400) if success else None,
                        "cache_read_input_tokens": context // 2 if success else None,
                        "reasoning_tokens": rng.randint(0, 200) if success else None,
                        "tool_calls": len(names),
                        "tool_names": names,
                        "visible_reasoning_chars": rng.choice([0, 0, 600]),
                        "simulated": model.startswith("sim"),
                        "error": None if success else "HTTP 529 overloaded",
                        # What a live row also carries and compare must not hold in memory.
                        "headers": {"request-id": f"req_{rng.getrandbits(64):016x}", "retry-after": "1"},
                        "usage": {"input_tokens": context, "output_tokens": 100, "cache_creation": {"x": 0}},
                    }
                    writer.write_exchange_row(row)
                    agent += 1
                    if success:
                        ok.append(row)
                        for name in names:
                            tools[name] += 1
                            writer.tool_call(
                                {**base, "step": step, "tool": name, "ok": True, "duration_ms": 40.0}
                            )
                context += rng.randint(300, 1500)
            writer.task(
                {
                    **base,
                    "suite": suite,
                    "simulated": model.startswith("sim"),
                    "source": "live",
                    "status": "ok",
                    "stop_reason": "completed",
                    "user_turns": 1,
                    "model_calls": len(ok),
                    "exchanges": agent,
                    "retries": agent - steps,
                    "failed_exchanges": agent - len(ok),
                    "tool_calls": sum(tools.values()),
                    "tool_calls_by_name": dict(sorted(tools.items())),
                    "input_tokens": sum(r["input_tokens"] for r in ok),
                    "output_tokens": sum(r["output_tokens"] for r in ok),
                    "reasoning_tokens": sum(r["reasoning_tokens"] for r in ok),
                    "visible_reasoning_chars": sum(r["visible_reasoning_chars"] for r in ok),
                    "prompt_tokens": ok[0]["input_tokens"],
                    "judge_exchanges": 0,
                    "cost_usd": round(sum(r["input_tokens"] for r in ok) * 3e-6, 6),
                    "score": float(rng.random() < 0.4),
                    "wall_s": rng.uniform(30, 600),
                }
            )
            written += agent
    writer.finish("complete")
    return written


def timed(label: str, fn: Callable[[], Any], times: dict[str, float]) -> Any:
    start = time.perf_counter()
    out = fn()
    times[label] = time.perf_counter() - start
    return out


def pipeline(run_dirs: list[Path], times: dict[str, float], plots_dir: Path | None) -> Any:
    runs = timed("load_runs", lambda: cmp.load_runs(run_dirs), times)
    comparison = timed("compare (bootstrap, 2000 resamples)", lambda: cmp.compare(runs), times)
    for fmt in cmp.FORMATS:
        timed(f"render {fmt}", lambda fmt=fmt: cmp.render(comparison, fmt), times)
    if plots_dir is not None:
        from harness import plots

        timed("plots (4 figures, PNG + SVG)", lambda: plots.write_plots(runs, plots_dir), times)
    return runs


def measure(root: Path, plots: bool) -> None:
    """Time and measure compare over the run directories under `root` (run in a fresh process)."""
    run_dirs = sorted(p for p in root.iterdir() if p.name.startswith("run-"))
    times: dict[str, float] = {}
    runs = pipeline(run_dirs, times, root / "plots" if plots else None)
    for label, seconds in times.items():
        print(f"  {label:<40} {seconds:7.2f} s")
    print(f"  {'total':<40} {sum(times.values()):7.2f} s")
    frames = {
        "tasks": runs.tasks.memory_usage(deep=True).sum(),
        "exchanges": runs.exchanges.memory_usage(deep=True).sum(),
        "tool_calls": runs.tool_calls.memory_usage(deep=True).sum(),
    }
    print(
        f"tables in memory: {len(runs.tasks):,} task runs, {len(runs.exchanges):,} exchanges, "
        f"{len(runs.tool_calls):,} tool calls = {sum(frames.values()) / 1e6:.1f} MB "
        f"({', '.join(f'{k} {v / 1e6:.1f}' for k, v in frames.items())})"
    )
    print(
        f"max resident set size of the compare process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB"
    )
    del runs
    tracemalloc.start()
    pipeline(run_dirs, {}, None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak Python allocations during load + compare + render (tracemalloc): {peak / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--exchanges", type=int, default=100_000, help="exchanges in total, over all runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the runs here and keep them (default: a temp dir)")
    parser.add_argument("--no-plots", action="store_true", help="time compare only")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure is not None:
        measure(args.measure, plots=not args.no_plots)
        return

    root = args.keep or Path(tempfile.mkdtemp(prefix="ampbench-bench-"))
    rng = random.Random(args.seed)
    start = time.perf_counter()
    run_dirs = [root / f"run-{i:03d}" for i in range(args.runs)]
    total = sum(write_run(d, i, args.exchanges // args.runs, rng) for i, d in enumerate(run_dirs))
    raw = sum(f.stat().st_size for d in run_dirs for f in d.iterdir())
    print(
        f"wrote {args.runs} runs, {total:,} exchanges, {raw / 1e6:.1f} MB on disk in {time.perf_counter() - start:.1f} s"
    )
    # A fresh process, so its resident-set peak is compare's own, not the generator's.
    child = [sys.executable, __file__, "--measure", str(root), *(["--no-plots"] if args.no_plots else [])]
    subprocess.run(child, check=True)
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
