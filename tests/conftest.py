"""Shared test helpers: where the shared fixtures live, a CLI runner, a process finder, and
the hostile payloads the SWE tests send into workspaces."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(autouse=True)
def _unshared_grades():
    """Each test grades for itself: verdicts are shared by every run of a process, and a test
    that spies on or breaks the grader must not get another test's verdict."""
    yield
    suite = sys.modules.get("suites.swe.suite")
    if suite is not None:
        suite.forget_shared_verdicts()


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


# A conftest that turns every test result into a pass: what a patch gaming the grader would add.
FORCING_CONFTEST = textwrap.dedent(
    """\
    import pytest


    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        report.outcome = "passed"
        report.longrepr = None
    """
)


def fork_script(count: int, sleep_s: float) -> str:
    """A shell command that forks `count` children, each sleeping `sleep_s` then exiting (bounded,
    so that even a failed limit cannot hurt a shared machine for long), and prints what it got."""
    return textwrap.dedent(
        f"""\
        python - <<'EOF'
        import os, time
        forked = refused = 0
        for _ in range({count}):
            try:
                pid = os.fork()
            except OSError:
                refused += 1
                continue
            if pid == 0:
                time.sleep({sleep_s})
                os._exit(0)
            forked += 1
        print(f"forked {{forked}}, refused {{refused}}")
        EOF"""
    )
