"""Record the committed runs of cassettes/runs.yaml again.

    .venv/bin/python scripts/record_cassettes.py                 # every run
    .venv/bin/python scripts/record_cassettes.py --name snitch-sim

Simulator runs need nothing. `compat:` runs need their server up (for the
local model: `make local-model-start`). Each run's folder is emptied first, so
no stale cassette survives; the recorded result files go to a temp dir.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

from harness import committed


def reachable(spec: str) -> bool:
    if not spec.startswith("compat:"):
        return True
    base = spec.split("@", 1)[1].rstrip("/")
    try:
        with urllib.request.urlopen(base + "/models", timeout=60):
            return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", action="append", help="only this run (repeatable)")
    parser.add_argument("--root", type=Path, default=Path("cassettes"))
    args = parser.parse_args()
    runs = [r for r in committed.load_index(args.root) if not args.name or r.name in args.name]
    out_root = Path(tempfile.mkdtemp(prefix="ampbench-record-"))
    for run in runs:
        down = [m for m in run.models if not reachable(m)]
        if down:
            print(
                f"skip {run.name}: {', '.join(down)} not reachable (make local-model-start)", file=sys.stderr
            )
            continue
        shutil.rmtree(args.root / run.name, ignore_errors=True)
        run_dir = committed.record(run, args.root, out_root / run.name)
        print(f"recorded {run.name}: results in {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
