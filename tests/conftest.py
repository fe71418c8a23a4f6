"""Shared test helpers: where the shared fixtures live, a CLI runner, and a process finder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture
def shared_fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES} (CI lays shared/ beside the clone)")
    return FIXTURES


def ampbench(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run the real `ampbench` command in a subprocess; returns the CompletedProcess."""
    full_env = {
        k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")
    }
    full_env.update(env or {})
    full_env.setdefault("COLUMNS", "200")
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
    )


def processes_with(argument: str) -> list[int]:
    """Pids whose command line has `argument` as one of its words (tests mark commands with a
    unique sleep duration, then look for what is left of them)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if argument.encode() in fh.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            continue
    return found
