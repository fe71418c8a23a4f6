"""Result files of a run, and the one loader that turns them into DataFrames.

Files are append-only and flushed per record, so a crash loses at most the
tasks in flight. `manifest.json` says whether a run finished: its `status`
is `running` until the runner writes `complete` (or `interrupted`).
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from harness.errors import UserError
from harness.ledger import Exchange

MANIFEST = "manifest.json"
EXCHANGES = "exchanges.jsonl"
TOOL_CALLS = "tool_calls.jsonl"
TASKS = "tasks.csv"
SUMMARY = "summary.md"

TASK_COLUMNS: tuple[str, ...] = (
    "run_id",
    "suite",
    "task_id",
    "model",
    "simulated",
    "repeat",
    "session",
    "source",
    "status",
    "stop_reason",
    "user_turns",
    "model_calls",
    "format_errors",
    "exchanges",
    "retries",
    "failed_exchanges",
    "tool_calls",
    "tool_calls_by_name",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
    "visible_reasoning_chars",
    "prompt_tokens",
    "judge_exchanges",
    "judge_input_tokens",
    "judge_output_tokens",
    "cost_usd",
    "score",
    "wall_s",
    "error",
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Versions a manifest records: Python, ampbench and the libraries that shape the counts."""
    out = {"python": platform.python_version()}
    for dist in ("ampbench", "anthropic", "openai", "httpx2", "vcrpy", "inspect-ai"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class RunWriter:
    """Writes one run directory; also the ledger sink of that run."""

    def __init__(
        self,
        run_dir: Path,
        manifest: dict[str, Any],
        *,
        extra_task_columns: Iterable[str] = (),
        resume: bool = False,
    ) -> None:
        self.dir = Path(run_dir)
        self.task_columns = list(TASK_COLUMNS) + [c for c in extra_task_columns if c not in TASK_COLUMNS]
        if resume:
            self.manifest = read_manifest(self.dir)
            self.manifest.setdefault("sessions", []).append({"started": now_iso()})
            if self.manifest.get("task_columns"):
                self.task_columns = list(self.manifest["task_columns"])
        else:
            self.dir.mkdir(parents=True, exist_ok=False)
            self.manifest = {
                **manifest,
                "status": "running",
                "started": now_iso(),
                "task_columns": self.task_columns,
            }
        self._write_manifest()
        self._exchanges: IO[str] = open(self.dir / EXCHANGES, "a", encoding="utf-8")  # noqa: SIM115
        self._tools: IO[str] = open(self.dir / TOOL_CALLS, "a", encoding="utf-8")  # noqa: SIM115
        new_csv = not (self.dir / TASKS).exists() or (self.dir / TASKS).stat().st_size == 0
        self._tasks: IO[str] = open(self.dir / TASKS, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._csv = csv.DictWriter(self._tasks, fieldnames=self.task_columns, extrasaction="ignore")
        if new_csv:
            self._csv.writeheader()
            self._tasks.flush()

    @property
    def session(self) -> int:
        return len(self.manifest.get("sessions", []))

    def _write_manifest(self) -> None:
        tmp = self.dir / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.dir / MANIFEST)

    def record(self, exchange: Exchange) -> None:
        """LedgerSink: append one exchange and flush it to disk."""
        self.write_exchange_row(exchange.to_dict())

    def write_exchange_row(self, row: dict[str, Any]) -> None:
        self._exchanges.write(json.dumps(row, sort_keys=True) + "\n")
        self._exchanges.flush()

    def tool_call(self, row: dict[str, Any]) -> None:
        self._tools.write(json.dumps(row, sort_keys=True) + "\n")
        self._tools.flush()

    def task(self, row: dict[str, Any]) -> None:
        self._csv.writerow({k: _cell(v) for k, v in row.items()})
        self._tasks.flush()

    def finish(self, status: str = "complete", summarize: Callable[[Path], str] | None = None) -> None:
        """Close the files, mark the run's status, then write summary.md from the finished files."""
        self.close()
        self.manifest["status"] = status
        self.manifest["ended"] = now_iso()
        self._write_manifest()
        if summarize is not None:
            (self.dir / SUMMARY).write_text(summarize(self.dir), encoding="utf-8")

    def close(self) -> None:
        for handle in (self._exchanges, self._tools, self._tasks):
            if not handle.closed:
                handle.close()


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{run_dir} is not a run directory: no {MANIFEST}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def iter_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (crash mid-write) is skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def completed_keys(run_dir: Path) -> set[tuple[str, str, int]]:
    """(task_id, model, repeat) of every task run already written to tasks.csv."""
    path = Path(run_dir) / TASKS
    if not path.exists():
        return set()
    with open(path, encoding="utf-8", newline="") as handle:
        return {(r["task_id"], r["model"], int(r["repeat"])) for r in csv.DictReader(handle)}


@dataclass
class RunData:
    """A run as DataFrames: one loader, used by report, compare and notebooks."""

    run_dir: Path
    manifest: dict[str, Any]
    tasks: Any  # pandas.DataFrame
    exchanges: Any  # pandas.DataFrame
    tool_calls: Any  # pandas.DataFrame
    orphaned_exchanges: int
    """Exchanges of task attempts that never finished (a crash before --resume); real traffic, not in tasks."""


# Only these exchange fields are loaded: raw usage objects and headers stay on disk,
# so memory follows the size of the tables, not of the bodies.
EXCHANGE_FIELDS: tuple[str, ...] = (
    "run_id",
    "task_id",
    "model",
    "repeat",
    "step",
    "user_turn",
    "role",
    "attempt",
    "session",
    "endpoint",
    "status",
    "streamed",
    "latency_ms",
    "request_bytes",
    "response_bytes",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
    "tool_calls",
    "tool_names",
    "visible_reasoning_chars",
    "stop_reason",
    "simulated",
    "error",
    "source",
)


def load(run_dir: str | Path) -> RunData:
    """Load a run directory into DataFrames (`tasks`, `exchanges`, `tool_calls`)."""
    import pandas as pd

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    tasks_path = run_dir / TASKS
    tasks = (
        pd.read_csv(tasks_path, keep_default_na=True)
        if tasks_path.exists()
        else pd.DataFrame(columns=TASK_COLUMNS)
    )
    if "task_id" in tasks:
        tasks["task_id"] = tasks["task_id"].astype(str)

    rows = [{k: r.get(k) for k in EXCHANGE_FIELDS} for r in iter_jsonl(run_dir / EXCHANGES)]
    exchanges = pd.DataFrame(rows, columns=list(EXCHANGE_FIELDS))
    for col in (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "reasoning_tokens",
        "status",
    ):
        exchanges[col] = exchanges[col].astype("Int64")
    tool_calls = pd.DataFrame(list(iter_jsonl(run_dir / TOOL_CALLS)))

    orphaned = 0
    if len(exchanges) and len(tasks) and "session" in tasks:
        done = set(
            zip(
                tasks["task_id"].astype(str),
                tasks["model"],
                tasks["repeat"].astype(int),
                tasks["session"].astype(int),
                strict=True,
            )
        )
        keys = list(
            zip(
                exchanges["task_id"].astype(str),
                exchanges["model"],
                exchanges["repeat"].astype(int),
                exchanges["session"].astype(int),
                strict=True,
            )
        )
        mask = [k in done for k in keys]
        orphaned = len(mask) - sum(mask)
        exchanges = exchanges[mask].reset_index(drop=True)
    return RunData(run_dir, manifest, tasks, exchanges, tool_calls, orphaned)
