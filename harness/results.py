"""Result files of a run, and the one loader that turns them into DataFrames.

Files are append-only and flushed per record, so a crash loses at most the
tasks in flight. `manifest.json` says whether a run finished: its `status`
is `running` until the runner writes `complete` (or `interrupted`).
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import platform
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from harness.errors import UserError
from harness.records import (
    EXCHANGE_COLUMNS,
    RAW_EXCHANGE_COLUMNS,
    TASK_COLUMNS,
    TEXT_TASK_COLUMNS,
    TOKEN_FIELDS,
    Exchange,
)
from harness.records import (
    number as to_number,
)
from harness.redact import Scrubber

MANIFEST = "manifest.json"
EXCHANGES = "exchanges.jsonl"
TOOL_CALLS = "tool_calls.jsonl"
TASKS = "tasks.csv"
SUMMARY = "summary.md"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Versions a manifest records: Python, ampbench and the libraries that shape the counts."""
    out = {"python": platform.python_version()}
    for dist in ("ampbench", "anthropic", "openai", "httpx2", "vcrpy", "inspect-ai"):
        try:
            found = importlib.metadata.distribution(dist)
            metadata = found.read_text("METADATA") or found.read_text("PKG-INFO") or ""
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "missing"
            continue
        # The Version line itself: importlib.metadata.version() parses the whole file as an
        # email message first, ~9 ms a package at the start of every run.
        line = re.search(r"^Version:[ \t]*(\S+)", metadata, re.MULTILINE)
        out[dist] = line.group(1) if line else "unknown"
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
        scrubber: Scrubber | None = None,
    ) -> None:
        self.dir = Path(run_dir)
        self.scrub = scrubber or Scrubber()
        """Applied to every byte this writer writes: no key reaches a result file."""
        self.task_columns = list(TASK_COLUMNS) + [c for c in extra_task_columns if c not in TASK_COLUMNS]
        self.repaired: list[str] = []
        """What resuming cut off: torn last lines left by a crash mid-write."""
        if not resume:
            self.dir.mkdir(parents=True, exist_ok=False)
        self._lock = RunLock(self.dir)
        if resume:
            for name in (EXCHANGES, TOOL_CALLS, TASKS):
                cut = cut_torn_tail(self.dir / name)
                if cut:
                    self.repaired.append(
                        f"cut a torn last line of {name} ({cut} bytes, written by a run that crashed mid-write)"
                    )
            self.manifest = read_manifest(self.dir)
            self.manifest.setdefault("sessions", []).append({"started": now_iso()})
            if self.manifest.get("task_columns"):
                self.task_columns = list(self.manifest["task_columns"])
        else:
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

    def open_session(self, reason: str) -> int:
        """Start a new session of this run, saying why in the manifest; return its number.

        A task run whose attempt was lost (its cluster node died) runs again in a new session:
        the lost attempt's exchanges stay in the ledger under the old one, where `read_run`
        counts them apart, as it does those of task runs interrupted before `--resume`."""
        self.manifest.setdefault("sessions", []).append({"started": now_iso(), "reason": reason})
        self._write_manifest()
        return self.session

    def _write_manifest(self) -> None:
        tmp = self.dir / (MANIFEST + ".tmp")
        text = self.scrub(json.dumps(self.manifest, indent=2, sort_keys=True) + "\n")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.dir / MANIFEST)

    def record(self, exchange: Exchange) -> None:
        """LedgerSink: append one exchange and flush it to disk."""
        self.write_exchange_row(exchange.to_dict())

    def write_exchange_row(self, row: dict[str, Any]) -> None:
        self._exchanges.write(self.scrub(json.dumps(row, sort_keys=True)) + "\n")
        self._exchanges.flush()

    def tool_call(self, row: dict[str, Any]) -> None:
        self._tools.write(self.scrub(json.dumps(row, sort_keys=True)) + "\n")
        self._tools.flush()

    def task(self, row: dict[str, Any]) -> None:
        cells = {k: _cell(v) for k, v in row.items()}
        self._csv.writerow({k: self.scrub(v) if isinstance(v, str) else v for k, v in cells.items()})
        self._tasks.flush()

    def finish(self, status: str = "complete", summarize: Callable[[Path], str] | None = None) -> None:
        """Close the files, mark the run's status and its task-run counts, then write summary.md."""
        self.close()
        self.manifest["status"] = status
        self.manifest["ended"] = now_iso()
        self.manifest["task_runs"] = task_run_counts(self.dir)
        self._write_manifest()
        if summarize is not None:
            (self.dir / SUMMARY).write_text(self.scrub(summarize(self.dir)), encoding="utf-8")

    def close(self) -> None:
        for handle in (self._exchanges, self._tools, self._tasks):
            if not handle.closed:
                handle.close()
        self._lock.release()


LOCK = ".lock"


class RunLock:
    """An exclusive lock on a run directory, held while one process writes it.

    `flock` is released by the kernel when the holder dies, so a killed run
    never leaves a stale lock behind; the file only says who held it last.
    """

    def __init__(self, run_dir: Path) -> None:
        import fcntl

        self.path = Path(run_dir) / LOCK
        self._handle: IO[str] | None = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "another process"
            self._handle.close()
            self._handle = None
            raise UserError(
                f"{run_dir} is being written by {holder}; wait for it to finish or stop it first"
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"pid {os.getpid()} on {platform.node()} since {now_iso()}\n")
        self._handle.flush()

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None


def torn_tail(path: Path) -> int:
    """Bytes after the last newline of a file (a record a crash cut mid-write); 0 when none."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb") as handle:
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            chunk = handle.read(end - start)
            at = chunk.rfind(b"\n")
            if at >= 0:
                return size - (start + at + 1)
            end = start
    return size


def cut_torn_tail(path: Path) -> int:
    """Truncate a torn last record; returns the bytes cut."""
    cut = torn_tail(path)
    if cut:
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size - cut)
    return cut


def _read_text(path: Path) -> str:
    """A result file's text; one clear UserError for anything that is not a readable UTF-8 file."""
    try:
        text = path.read_text(encoding="utf-8")
        if "\x00" in text:
            raise UserError(f"{path} holds binary data (NUL bytes), not ampbench results")
        return text
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a result file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start}); is it a result file?") from None
    except OSError as exc:
        raise UserError(f"{path} cannot be read: {exc.strerror or exc}") from None


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    try:
        manifest = json.loads(_read_text(path))
    except FileNotFoundError:
        raise UserError(f"{run_dir} is not a run directory: no {MANIFEST}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(manifest, dict):
        raise UserError(
            f"{path} is not a run manifest: it holds a JSON {type(manifest).__name__}, not an object"
        )
    return manifest


def read_jsonl(path: Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a JSONL result file.

    A torn last line (a crash mid-write) is skipped and said in `warnings`; any
    other line that is not a JSON object is a UserError naming the line.
    """
    return list(iter_jsonl(path, warnings))


def iter_jsonl(path: Path, warnings: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """`read_jsonl` one row at a time, so that a reader keeping less than whole rows holds less."""
    try:
        text = _read_text(path)
    except FileNotFoundError:
        return
    end = text.rfind("\n") + 1
    torn = len(text) - end
    start, number = 0, 0
    while start < end:
        stop = text.index("\n", start)
        line, start, number = text[start:stop], stop + 1, number + 1
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} line {number} is not JSON ({exc.msg}); the file is damaged") from None
        if not isinstance(row, dict):
            raise UserError(f"{path} line {number} is a JSON {type(row).__name__}, not a row object")
        yield row
    if torn and warnings is not None:
        warnings.append(f"{path.name}: a torn last line ({torn} bytes, a crash mid-write) was left out")


def read_tasks(path: Path, warnings: list[str] | None = None) -> list[dict[str, str]]:
    """Rows of tasks.csv as text; a torn last row is left out (and said), a malformed one is a UserError."""
    try:
        text = _read_text(path)
    except FileNotFoundError:
        return []
    if text and "\n" not in text:
        raise UserError(f"{path} has no complete header line; is it a tasks.csv of ampbench?")
    torn = len(text) - (text.rfind("\n") + 1)
    if torn and warnings is not None:
        warnings.append(f"{path.name}: a torn last row ({torn} bytes, a crash mid-write) was left out")
    body = text[: len(text) - torn]
    if not body.strip():
        return []
    try:
        rows = list(csv.DictReader(io.StringIO(body, newline="")))
    except csv.Error as exc:
        raise UserError(f"{path} is not a valid CSV file ({exc})") from None
    missing = {"task_id", "model", "repeat"} - set(
        rows[0] if rows else csv.DictReader(io.StringIO(body)).fieldnames or []
    )
    if missing:
        raise UserError(f"{path} has no {', '.join(sorted(missing))} column; is it a tasks.csv of ampbench?")
    for number, row in enumerate(rows, start=2):
        for col in ("repeat", "session"):
            value = row.get(col)
            if value not in (None, "") and not value.lstrip("-").isdigit():
                raise UserError(f"{path} line {number}: {col} {value!r} is not a whole number")
        if None in row:
            raise UserError(f"{path} line {number} has more cells than the header")
    return rows


def completed_keys(run_dir: Path) -> set[tuple[str, str, int]]:
    """(task_id, model, repeat) of every task run already written to tasks.csv."""
    return {(r["task_id"], r["model"], int(r["repeat"] or 0)) for r in read_tasks(Path(run_dir) / TASKS)}


def task_run_counts(run_dir: Path) -> dict[str, Any]:
    """How many task runs tasks.csv holds, how many errored, and their errors grouped by message."""
    rows = read_tasks(Path(run_dir) / TASKS)
    errored = [r for r in rows if r.get("status") == "error"]
    errors = Counter((r.get("error") or "unknown error") for r in errored)
    return {
        "total": len(rows),
        "errored": len(errored),
        "errors": dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


@dataclass
class RunData:
    """A run as DataFrames (`load`: compare and notebooks) or as rows (`read_run`: a run's end, report)."""

    run_dir: Path
    manifest: dict[str, Any]
    tasks: Any  # pandas.DataFrame (`load`) or a list of dicts (`read_run`)
    exchanges: Any  # pandas.DataFrame or a list of dicts
    tool_calls: Any  # pandas.DataFrame or a list of dicts
    orphaned_exchanges: int
    """Exchanges of task attempts that never finished (a crash before --resume); real traffic, not in tasks."""
    warnings: list[str] = field(default_factory=list)
    """What loading left out (torn last lines of a crashed run)."""


EXCHANGE_FIELDS: tuple[str, ...] = tuple(c for c in EXCHANGE_COLUMNS if c not in RAW_EXCHANGE_COLUMNS)
"""The exchange columns `load` reads: every column but the raw usage objects and headers, which stay
on disk, so memory follows the size of the tables, not of the bodies."""


def _whole(value: Any) -> int:
    """A repeat or session cell as a whole number (0 when empty)."""
    value = to_number(value)
    return 0 if value != value else int(value)


def read_run(run_dir: str | Path) -> RunData:
    """A run directory as rows, without pandas: `tasks` (tasks.csv, empty cells None), `exchanges`
    (`EXCHANGE_FIELDS`; repeat and session whole numbers, `sent` a bool) and `tool_calls`.

    Exchanges of task attempts that never finished (a crash before --resume) are left out and
    counted in `orphaned_exchanges`. Damaged files raise a UserError naming the file and line; a
    torn last line (a crash mid-write) is left out and said in `warnings`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory; pass a run directory such as results/<run_id>")
    manifest = read_manifest(run_dir)
    warnings: list[str] = []
    tasks = [
        {k: (None if v == "" else v) for k, v in r.items()} for r in read_tasks(run_dir / TASKS, warnings)
    ]
    # One object for each distinct short text (run id, model, task id, ...): a row holds references.
    texts: dict[str, str] = {}

    def shared(value: Any) -> Any:
        return texts.setdefault(value, value) if isinstance(value, str) and len(value) <= 200 else value

    exchanges = [
        {k: shared(r.get(k)) for k in EXCHANGE_FIELDS} for r in iter_jsonl(run_dir / EXCHANGES, warnings)
    ]
    if not exchanges and tasks and not (run_dir / EXCHANGES).exists():
        claimed = int(sum(n for n in (to_number(t.get("exchanges")) for t in tasks) if n == n))
        if claimed:
            raise UserError(
                f"{run_dir}/{EXCHANGES} is missing but tasks.csv claims {claimed} exchanges; "
                "the run directory is incomplete"
            )
    for row in exchanges:
        row["repeat"] = _whole(row["repeat"])
        row["session"] = _whole(row["session"])
        # Rows written before `sent` existed were all counted as exchanges.
        row["sent"] = row["sent"] is not False
    tool_calls = [
        {shared(k): shared(v) for k, v in r.items()} for r in iter_jsonl(run_dir / TOOL_CALLS, warnings)
    ]

    orphaned = 0
    if exchanges and tasks and "session" in tasks[0]:
        done = {
            (str(t["task_id"]), str(t["model"]), _whole(t["repeat"]), _whole(t["session"])) for t in tasks
        }
        kept = [r for r in exchanges if (str(r["task_id"]), r["model"], r["repeat"], r["session"]) in done]
        orphaned = len(exchanges) - len(kept)
        exchanges = kept
    return RunData(run_dir, manifest, tasks, exchanges, tool_calls, orphaned, warnings)


def load(run_dir: str | Path, *, rows: RunData | None = None) -> RunData:
    """Load a run directory into DataFrames (`tasks`, `exchanges`, `tool_calls`): `read_run`'s rows,
    or `rows` when the caller has read them already (a run that just finished).

    Damaged files raise a UserError naming the file and line; a torn last line
    (a crash mid-write) is left out and said in `warnings`.
    """
    import pandas as pd

    if rows is None:
        rows = read_run(run_dir)
    tasks = pd.DataFrame(rows.tasks) if rows.tasks else pd.DataFrame(columns=list(TASK_COLUMNS))
    # Text cells as pandas would read them from CSV: empty is missing, numbers are numbers.
    for col in tasks.columns:
        if col in TEXT_TASK_COLUMNS:
            continue
        converted = pd.to_numeric(tasks[col], errors="coerce")
        if converted.notna().sum() == tasks[col].notna().sum():
            tasks[col] = converted
    for col in ("task_id", "model"):
        if col in tasks:
            tasks[col] = tasks[col].astype(str)
    exchanges = pd.DataFrame(rows.exchanges, columns=list(EXCHANGE_FIELDS))
    for col in ("repeat", "session"):
        exchanges[col] = exchanges[col].astype("int64")
    for col in (*TOKEN_FIELDS, "status"):
        exchanges[col] = pd.to_numeric(exchanges[col], errors="coerce").astype("Int64")
    exchanges["sent"] = exchanges["sent"].astype(bool)
    tool_calls = pd.DataFrame(rows.tool_calls)
    return RunData(
        rows.run_dir, rows.manifest, tasks, exchanges, tool_calls, rows.orphaned_exchanges, rows.warnings
    )
