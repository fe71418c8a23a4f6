"""Time `ampbench ingest` on a directory of N synthetic mini-swe-agent trajectories.

    .venv/bin/python scripts/bench_ingest.py            # N = 3000
    .venv/bin/python scripts/bench_ingest.py -n 10000 --progress

Each file is a real trajectory from ../shared/fixtures/trajectories (or
--source), perturbed so that no two are alike: its own instance id, a
different number of steps (messages dropped from the end, api_calls kept
consistent), scaled token counts and cost. Files are written to a temporary
directory, ingested into another, and the ingest time is printed.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.ingest import ingest  # noqa: E402
from harness.results import load  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "trajectories" / "mini-swe-agent"


def perturb(base: dict[str, Any], index: int, rng: random.Random) -> dict[str, Any]:
    data = copy.deepcopy(base)
    messages = data["messages"]
    calls = data["info"]["model_stats"]["api_calls"]
    # Drop 0..calls//2 trailing (assistant, observation) pairs; keep system + task + final message.
    drop = rng.randint(0, calls // 2)
    if drop:
        data["messages"] = [*messages[: len(messages) - 1 - 2 * drop], messages[-1]]
    kept = calls - drop
    data["info"]["model_stats"]["api_calls"] = kept
    scale = rng.uniform(0.5, 2.0)
    for message in data["messages"]:
        usage = ((message.get("extra") or {}).get("response") or {}).get("usage")
        if isinstance(usage, dict):
            for key in ("prompt_tokens", "completion_tokens"):
                if isinstance(usage.get(key), int):
                    usage[key] = int(usage[key] * scale)
    data["info"]["model_stats"]["instance_cost"] = round(
        data["info"]["model_stats"]["instance_cost"] * scale, 6
    )
    data["instance_id"] = f"synthetic__{index:06d}"
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="number of trajectory files (default 3000)")
    parser.add_argument(
        "--source", type=Path, default=None, help="a .traj.json to perturb (default: a fixture)"
    )
    parser.add_argument("--progress", action="store_true", help="show the progress bar while ingesting")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = args.source or next(iter(sorted(FIXTURES.glob("*.traj.json"))), None)
    if source is None or not source.exists():
        raise SystemExit(f"no source trajectory: pass --source FILE.traj.json (looked in {FIXTURES})")
    base = json.loads(source.read_text(encoding="utf-8"))
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="ampbench-bench-") as tmp:
        inp = Path(tmp) / "trajs"
        total_bytes = 0
        for i in range(args.n):
            folder = inp / f"synthetic__{i:06d}"
            folder.mkdir(parents=True)
            text = json.dumps(perturb(base, i, rng), indent=2)
            (folder / f"synthetic__{i:06d}.traj.json").write_text(text, encoding="utf-8")
            total_bytes += len(text)
        out = Path(tmp) / "run"
        started = time.perf_counter()
        result = ingest([inp], out, progress=args.progress)
        elapsed = time.perf_counter() - started
        data = load(out)
        assert len(data.tasks) == args.n, (len(data.tasks), args.n)
        print(
            f"ingested {result.files} mini-swe-agent trajectories ({total_bytes / 1e6:.0f} MB, "
            f"{result.exchanges} exchanges, {result.tool_calls} tool calls) in {elapsed:.2f} s "
            f"= {result.files / elapsed:.0f} files/s (source: {source.name})"
        )


if __name__ == "__main__":
    main()
