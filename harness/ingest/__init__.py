"""`ampbench ingest`: measure amplification from logs that already exist.

Agent trajectories (mini-swe-agent, SWE-agent), Inspect AI eval logs,
SnitchBench transcripts and vcrpy cassettes become the same result files as
a live run (manifest.json, exchanges.jsonl, tool_calls.jsonl, tasks.csv), so
`ampbench report` and comparisons work on them unchanged.

Each format is one module with `NAME`, `SOURCE`, `LIMITS` (plain sentences
of what the format cannot see; they go to the manifest's `limits`),
`sniff(name, head, tail)` and `read(path, run_id=...) -> list[TaskRecord]`.
Modules are imported lazily: a format's optional dependency (inspect_ai) is
needed only when such a file is read.

Files are found by walking directories; a file that matches no format, or
that matches one but cannot be read, is listed in `skipped` (and in the
manifest) and never counted.

A task whose model calls no provider saw (a hand-written demonstration, a
replay of recorded actions, a human or scripted test model) keeps its steps
and tool calls but counts 0 model calls and 0 exchanges, with unknown tokens;
tasks.csv says why in `no_provider_reason`, and the manifest's `limits` say how
many such tasks the run holds.
"""

from __future__ import annotations

import importlib
import os
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.errors import UserError
from harness.ingest._common import EXTRA_TASK_COLUMNS, IngestFormatError, TaskRecord, display_path, finish_row
from harness.results import versions

__all__ = ["FORMATS", "IngestResult", "Skipped", "detect", "ingest"]

# Format name -> module, in sniffing order: the trajectory formats claim their own file suffixes first.
FORMATS: dict[str, str] = {
    "mini-swe-agent": "harness.ingest.mini_swe_agent",
    "swe-agent": "harness.ingest.swe_agent",
    "inspect": "harness.ingest.inspect_log",
    "vcr": "harness.ingest.vcr",
    "snitchbench": "harness.ingest.snitchbench",
}

_PROBE_BYTES = 4096


@dataclass(frozen=True)
class Skipped:
    """A file that was not ingested, and why."""

    path: str
    reason: str


@dataclass
class IngestResult:
    run_dir: Path | None
    run_id: str
    files: int = 0
    """Files ingested."""
    tasks: int = 0
    """tasks.csv rows written."""
    exchanges: int = 0
    tool_calls: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    """Files ingested per format."""
    skipped: list[Skipped] = field(default_factory=list)


def format_module(name: str) -> ModuleType:
    return importlib.import_module(FORMATS[name])


def _probe(path: Path) -> tuple[bytes, bytes]:
    """The first and last few KB of a file: enough to sniff every format without parsing it."""
    with open(path, "rb") as handle:
        head = handle.read(_PROBE_BYTES)
        size = os.fstat(handle.fileno()).st_size
        if size <= _PROBE_BYTES:
            return head, head
        handle.seek(max(size - _PROBE_BYTES, _PROBE_BYTES))
        return head, handle.read()


def detect(path: Path) -> str | None:
    """The format a file is in, by name and content sniffing; None when no format claims it."""
    head, tail = _probe(path)
    name = path.name.lower()
    for fmt in FORMATS:
        if format_module(fmt).sniff(name, head, tail):
            return fmt
    return None


def _walk(paths: Sequence[Path]) -> Iterator[tuple[Path, Path | None]]:
    """(file, the directory argument it was found under) for every file, in a stable order."""
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for filename in sorted(filenames):
                    if not filename.startswith("."):
                        yield Path(dirpath) / filename, path
        else:
            yield path, None


def new_run_id() -> str:
    return f"ingest-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class _Keys:
    """Keeps (task, model, repeat) unique: a second file of the same task and model becomes the next repeat."""

    def __init__(self) -> None:
        self.used: set[tuple[str, str, int]] = set()

    def place(self, record: TaskRecord) -> TaskRecord:
        origin = record.origin
        repeat = origin.repeat
        while (origin.task_id, origin.model, repeat) in self.used:
            repeat += 1
        self.used.add((origin.task_id, origin.model, repeat))
        return record if repeat == origin.repeat else record.with_repeat(repeat)


def _read(fmt: str, path: Path, root: Path | None, run_id: str) -> list[TaskRecord]:
    module = format_module(fmt)
    if fmt == "vcr":
        # Cassette names repeat across folders (sync.yaml, stream.yaml): the relative path tells them apart.
        task_id = display_path(path, root).rsplit(".", 1)[0]
        return module.read(path, run_id=run_id, task_id=task_id)
    records: list[TaskRecord] = module.read(path, run_id=run_id)
    return records


def ingest(
    paths: Iterable[str | Path],
    out: str | Path,
    format: str | None = None,
    *,
    run_id: str | None = None,
    progress: bool = True,
) -> IngestResult:
    """Turn the logs under `paths` into a run directory `out`; see the module docstring.

    Raises UserError for bad input: an unknown format, a missing path, an `out`
    that already holds files, or nothing ingestible at all.
    """
    from harness.results import RunWriter, git_sha, now_iso

    if format is not None and format not in FORMATS:
        raise UserError(f"unknown format {format!r} (available: {', '.join(FORMATS)})")
    inputs = [Path(p) for p in paths]
    if not inputs:
        raise UserError("no PATH given: pass the files or directories to ingest")
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise UserError(f"no such file or directory: {', '.join(missing)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose another --out")
    if format == "inspect":
        format_module("inspect")._reader()  # missing inspect_ai: one clear line now, not per file
    run_id = run_id or new_run_id()
    result = IngestResult(run_dir=None, run_id=run_id)
    files = list(_walk(inputs))
    if not files:
        raise UserError(f"no files under {', '.join(str(p) for p in inputs)}")

    writer: RunWriter | None = None
    keys = _Keys()
    models: Counter[str] = Counter()
    limits: dict[str, list[str]] = {}
    no_provider: Counter[str] = Counter()
    bar = _progress(progress, len(files))
    try:
        with bar as live:
            task = live.add_task("ingest", total=len(files), tasks=0, skipped=0)
            for path, root in files:
                outcome = _read_one(path, root, format, run_id)
                if isinstance(outcome, Skipped):
                    result.skipped.append(outcome)
                    live.update(task, advance=1, skipped=len(result.skipped))
                    continue
                fmt, records = outcome
                if writer is None:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    if out.exists():
                        out.rmdir()
                    writer = RunWriter(
                        out,
                        {
                            "run_id": run_id,
                            "kind": "ingest",
                            "suite": "ingest",
                            "inputs": [str(p) for p in inputs],
                            "format": format,
                            "git_sha": git_sha(),
                            "versions": versions(),
                            "cassette_mode": "n/a",
                        },
                        extra_task_columns=EXTRA_TASK_COLUMNS,
                    )
                module = format_module(fmt)
                limits.setdefault(fmt, list(module.LIMITS))
                result.files += 1
                result.formats[fmt] += 1
                for record in records:
                    record = keys.place(record)
                    for row in record.exchanges:
                        writer.write_exchange_row(row)
                    for row in record.tool_calls:
                        writer.tool_call(row)
                    row = finish_row(record, run_id=run_id, suite=f"ingest:{fmt}", source=module.SOURCE)
                    row["source_file"] = display_path(path, root) if root is not None else str(path)
                    writer.task(row)
                    if row.get("no_provider_reason"):
                        no_provider[row["no_provider_reason"]] += 1
                    models[record.origin.model] += 1
                    result.tasks += 1
                    result.exchanges += len(record.exchanges)
                    result.tool_calls += len(record.tool_calls)
                live.update(task, advance=1, tasks=result.tasks)
    except BaseException:
        # Rows written so far stay on disk; the manifest says the run did not finish.
        if writer is not None:
            writer.finish("interrupted")
        raise

    if writer is None:
        reasons = sorted({s.reason for s in result.skipped})
        detail = reasons[0] if len(reasons) == 1 else f"{len(result.skipped)} files skipped"
        raise UserError(f"nothing ingested from {', '.join(str(p) for p in inputs)}: {detail}")
    writer.manifest.update(
        suite="ingest:" + "+".join(sorted(result.formats)),
        formats=dict(sorted(result.formats.items())),
        models=[{"spec": m, "tasks": n} for m, n in sorted(models.items())],
        limits=[sentence for fmt in sorted(limits) for sentence in limits[fmt]]
        + _no_provider_limits(no_provider, result.tasks),
        skipped=[{"path": s.path, "reason": s.reason} for s in result.skipped],
        files_ingested=result.files,
        ingested_at=now_iso(),
    )
    writer.close()
    writer.finish("complete", summarize=lambda run_dir: _summary(run_dir, result))
    result.run_dir = out
    return result


def _no_provider_limits(reasons: Counter[str], tasks: int) -> list[str]:
    """The manifest sentence for tasks whose model calls no provider saw (demonstrations, replays, ...)."""
    if not reasons:
        return []
    total = sum(reasons.values())
    kinds = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    return [
        f"{total} of {tasks} ingested tasks were demonstrations or replays with no provider behind their "
        f"model calls ({kinds}): counted as 0 model calls and 0 provider exchanges, tokens and cost unknown; "
        "their steps and tool calls are kept (tasks.csv no_provider_reason)."
    ]


def _read_one(
    path: Path, root: Path | None, format: str | None, run_id: str
) -> tuple[str, list[TaskRecord]] | Skipped:
    """The format and task records of one file, or why it is skipped."""
    shown = str(path)
    try:
        fmt = _choose(path, format, explicit=root is None)
    except OSError as exc:
        return Skipped(shown, f"cannot read: {exc.strerror or exc}")
    if fmt is None:
        return Skipped(shown, "matches no format")
    if fmt.startswith("!"):
        return Skipped(shown, fmt[1:])
    try:
        return fmt, _read(fmt, path, root, run_id)
    except IngestFormatError as exc:
        return Skipped(shown, f"unreadable as {fmt}: {exc}")
    except UserError as exc:  # e.g. inspect_ai missing for one .eval among other files
        return Skipped(shown, str(exc))
    except OSError as exc:
        return Skipped(shown, f"cannot read: {exc.strerror or exc}")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # Third-party files vary: one with an unexpected shape must not stop thousands of others.
        return Skipped(shown, f"unreadable as {fmt}: unexpected content ({type(exc).__name__}: {exc})")


def _choose(path: Path, format: str | None, *, explicit: bool) -> str | None:
    """The format to read a file as; None if unknown, '!reason' if it does not fit the forced format."""
    detected = detect(path)
    if format is None:
        return detected
    if detected == format or explicit:
        # A file named on the command line is read as the forced format even if it does not sniff as it.
        return format
    return f"!not a {format} file" + (f" (looks like {detected})" if detected else "")


def _summary(run_dir: Path, result: IngestResult) -> str:
    """summary.md: the report module's table when it can render this run, else a short count."""
    try:
        from harness.report import summary_markdown
        from harness.results import read_run

        text = summary_markdown(read_run(run_dir))
    except Exception:  # the report is a convenience here; the result files are what count
        text = f"# Run {result.run_id}\n"
    lines = [text.rstrip(), "", "## Ingest", ""]
    lines.append(
        f"{result.files} files ingested ({', '.join(f'{n} {f}' for f, n in sorted(result.formats.items()))}), "
        f"{result.tasks} tasks, {result.exchanges} exchanges, {result.tool_calls} tool calls."
    )
    if result.skipped:
        lines += ["", f"{len(result.skipped)} files skipped:", ""]
        lines += [f"- `{s.path}`: {s.reason}" for s in result.skipped]
    return "\n".join(lines) + "\n"


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return _NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files · {task.fields[tasks]} tasks · {task.fields[skipped]} skipped"),
        TimeElapsedColumn(),
        transient=False,
    )
