"""A hostile agent against the swe suite, end to end: the sandbox's limits and the grading hold.

The agent is a scripted OpenAI-compatible server on loopback (Chat Completions,
native tool calls for the `tools` scaffold), run through `ampbench run` with a
`compat:` model spec like any local model server. In one task run it

1. writes a ``conftest.py`` that forces every test outcome to "passed",
2. forks 1,500 processes (a bounded loop: each child sleeps briefly and exits),
3. allocates 6 GiB,
4. writes a 3 GB file,

and submits without fixing anything. With the default limits of config.yaml
(512 processes, 4 GiB of memory, 1 GiB per file) every step is contained and
said in its observation, and the task run is not graded resolved.
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.runner import RunConfig, Runner
from suites.swe.limits import cgroup_support
from suites.swe.suite import load_config
from tests.conftest import FORCING_CONFTEST, fork_script

CGROUPS = cgroup_support()
pytestmark = pytest.mark.skipif(
    not (CGROUPS.has("pids") and CGROUPS.has("memory")),
    reason=f"the process and memory limits need cgroups ({'; '.join(CGROUPS.problems)})",
)

INSTANCE = "ampbench__calendarkit-1"  # 4 FAIL_TO_PASS, 14 PASS_TO_PASS tests

# Bounded: 1,500 forks at most, each child sleeps 2 s and exits.
FORK_1500 = fork_script(1500, 2)

ALLOCATE_6G = "python -c \"b = bytearray(6 << 30); print('allocated', len(b))\""

# head -c really writes (no sparse file). In TMPDIR, inside the workspace but outside
# the checkout: in the checkout, 1 GiB of zeros would be part of the model patch.
WRITE_3G = 'head -c 3G /dev/zero > "$TMPDIR/big"; stat -c "size %s" "$TMPDIR/big"'

SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("str_replace_editor", {"command": "create", "path": "conftest.py", "file_text": FORCING_CONFTEST}),
    ("bash", {"command": FORK_1500}),
    ("bash", {"command": ALLOCATE_6G}),
    ("bash", {"command": WRITE_3G}),
    ("submit", {}),
]


class ScriptedAgent(ThreadingHTTPServer):
    """A Chat Completions server on loopback whose every reply is the next call of SCRIPT
    (by the number of assistant messages in the request); it keeps every request body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedAgent

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        with self.server.lock:
            self.server.requests.append(body)
        step = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        name, arguments = SCRIPT[min(step, len(SCRIPT) - 1)]
        reply = {
            "id": f"chatcmpl-{step}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "hostile"),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": f"call_{step}",
                                "type": "function",
                                "function": {"name": name, "arguments": json.dumps(arguments)},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def agent():
    server = ScriptedAgent()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _our_cgroups() -> list[Path]:
    return [
        p
        for h in CGROUPS.hierarchies
        for p in h.parent.iterdir()
        if p.is_dir() and p.name.split("-")[1:2] == [str(os.getpid())]
    ]


def test_a_hostile_agent_is_contained_and_not_graded_resolved(tmp_path: Path, agent: ScriptedAgent) -> None:
    limits = load_config()["environment"]["limits"]
    assert (limits["processes"], limits["memory"], limits["file_size"]) == (512, "4GiB", "1GiB")
    workspaces = tmp_path / "workspaces"
    started = time.monotonic()
    config = RunConfig(
        suite="swe",
        models=[f"compat:hostile@{agent.base_url}"],
        out=str(tmp_path / "run"),
        suite_options={"workspace_dir": str(workspaces), "scaffold": "tools"},
        task_ids=[INSTANCE],
        concurrency=1,
    )
    run_dir = Runner(config, progress=False).run()
    assert time.monotonic() - started < 60

    with open(run_dir / "tasks.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["status"] == "ok" and row["stop_reason"] == "completed", row["error"]
    assert row["model_calls"] == str(len(SCRIPT))

    # What each step did, as the model saw it: the tool results of the last request.
    results = [m["content"] for m in agent.requests[-1]["messages"] if m.get("role") == "tool"]
    assert len(results) == len(SCRIPT) - 1
    created, forks, memory, big = results

    assert created.startswith("Created conftest.py")
    # Processes: capped below 512 (the command's own processes count too), the rest refused.
    counts = forks.split("forked ", 1)[1].split("\n", 1)[0]
    forked, refused = (int(part.split()[-1] if i else part) for i, part in enumerate(counts.split(", ")))
    assert forked < 512 and forked + refused == 1500 and refused > 900
    assert "[ampbench: process limit (512) reached: some processes could not start]" in forks
    # Memory: the 6 GiB allocation did not succeed; the kernel killed the process at 4 GiB.
    assert "allocated" not in memory and "<returncode>137</returncode>" in memory
    assert "[ampbench: memory limit (4 GiB) reached: a process of the command was killed]" in memory
    # The file stopped at 1 GiB.
    assert f"size {1 << 30}\n" in big
    assert "[ampbench: file size limit (1 GiB) reached: writing beyond it failed]" in big

    # The forcing conftest.py did not make the run resolved, and the grade says why.
    assert row["resolved"] == "false" and row["score"] == "0.0"
    assert row["grade_status"] == "unresolved"
    assert row["f2p_passed"] == "0" and row["f2p_total"] == "4"
    assert "test infrastructure reset to base_commit: removed conftest.py (conftest)" in row["grade_reason"]
    # The prediction is still the agent's full diff.
    (prediction,) = [json.loads(line) for line in (run_dir / "preds.jsonl").read_text().splitlines()]
    assert prediction["model_patch"].startswith("diff --git a/conftest.py b/conftest.py")
    assert 'report.outcome = "passed"' in prediction["model_patch"]

    # Nothing outlives the run: no workspace, owner file, process or cgroup.
    assert list(workspaces.iterdir()) == []
    assert _our_cgroups() == []
