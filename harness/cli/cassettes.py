"""`ampbench cassettes list|check`: what is recorded, and whether it is safe to commit."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from harness.cassettes import EXTENSION, iter_cassette_files
from harness.committed import INDEX, load_index
from harness.errors import UserError
from harness.ledger import SIMULATED_HEADER
from harness.report import SIMULATED_LABEL

app = typer.Typer(help="List and check recorded cassettes.", no_args_is_help=True)
console = Console()

_NAME = re.compile(r"^(?P<task>.+)__r(?P<repeat>\d+)\." + EXTENSION + "$")
# Shapes of real credentials; test fixtures' fake keys look like these on purpose.
_SECRET_PATTERNS = (
    re.compile(rb"sk-ant-[A-Za-z0-9_-]{20,}"),
    re.compile(rb"sk-(?:proj-)?[A-Za-z0-9_-]{32,}"),
    re.compile(rb"(?i)\"(?:x-api-key|authorization|openai-organization|openai-project|cookie)\"\s*:"),
    re.compile(rb"(?i)bearer\s+[A-Za-z0-9._-]{16,}"),
)


def _root(directory: Path) -> Path:
    if not directory.is_dir():
        raise UserError(f"cassette directory {directory} does not exist")
    return directory


def read_cassette_file(path: Path) -> dict[str, Any]:
    """Parse one of our cassette files; ValueError with the reason if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise ValueError("no 'interactions' list (not a vcrpy cassette)")
    for i, interaction in enumerate(data["interactions"]):
        try:
            interaction["request"]["method"]
            interaction["response"]["status"]["code"]
        except (KeyError, TypeError):
            raise ValueError(f"interaction {i} lacks a request method or a response status") from None
    return data


def _runs_of(root: Path) -> set[str] | None:
    """Run folders named in the root's runs.yaml, or None for a plain cassette dir."""
    if not (root / INDEX).is_file():
        return None
    return {run.name for run in load_index(root)}


def _place(root: Path, path: Path) -> tuple[str, str, str, str] | None:
    """(run, suite, model dir, file name) of a cassette, or None if it sits where none belongs.

    A plain cassette dir holds `<suite>/<model>/<task>__r<repeat>.json`; the
    committed root adds a run folder in front: `<run>/<suite>/<model>/...`.
    """
    parts = path.relative_to(root).parts
    if len(parts) == 3:
        return ("", *parts)  # type: ignore[return-value]
    if len(parts) == 4:
        return parts  # type: ignore[return-value]
    return None


@app.command("list")
def list_cassettes(
    directory: Annotated[Path, typer.Option("--dir", help="Cassette root.")] = Path("cassettes"),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Per run, suite and model: task runs recorded, interactions, and their statuses."""
    root = _root(directory)
    groups: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"files": 0, "interactions": 0, "statuses": Counter(), "tasks": set(), "simulated": False}
    )
    for path in iter_cassette_files(root):
        place = _place(root, path)
        if place is None:
            continue
        run, suite, model, name = place
        entry = groups[(run, suite, model)]
        entry["files"] += 1
        match = _NAME.match(name)
        if match:
            entry["tasks"].add(match["task"])
        try:
            data = read_cassette_file(path)
        except ValueError:
            entry["statuses"]["unreadable"] += 1
            continue
        entry["interactions"] += len(data["interactions"])
        for interaction in data["interactions"]:
            if SIMULATED_HEADER in interaction["response"].get("headers", {}):
                entry["simulated"] = True
            failed = interaction["response"].get("ampbench_exception")
            entry["statuses"]["exception" if failed else str(interaction["response"]["status"]["code"])] += 1
    rows = [
        {
            "run": r,
            "suite": s,
            "model": m + (SIMULATED_LABEL if e["simulated"] else ""),
            "simulated": e["simulated"],
            "task_runs": e["files"],
            "tasks": len(e["tasks"]),
            "interactions": e["interactions"],
            "statuses": dict(sorted(e["statuses"].items())),
        }
        for (r, s, m), e in sorted(groups.items())
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"cassettes in {root}")
    for col in ("run", "suite", "model dir", "task runs", "tasks", "interactions", "statuses"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["run"] or "–",
            r["suite"],
            r["model"],
            str(r["task_runs"]),
            str(r["tasks"]),
            str(r["interactions"]),
            ", ".join(f"{k}: {v}" for k, v in r["statuses"].items()),
        )
    console.print(table)


@app.command("check")
def check(
    directory: Annotated[Path, typer.Option("--dir", help="Cassette root.")] = Path("cassettes"),
) -> None:
    """Every file parses, no secret is stored, no file is an orphan. Exit 1 on any problem."""
    root = _root(directory)
    listed = _runs_of(root)
    problems: list[str] = []
    files = iter_cassette_files(root)
    for path in files:
        rel = path.relative_to(root)
        place = _place(root, path)
        if place is None or not _NAME.match(place[3]):
            problems.append(f"{rel}: orphan (expected [<run>/]<suite>/<model>/<task>__r<repeat>.{EXTENSION})")
            continue
        if listed is not None and place[0] not in listed:
            problems.append(f"{rel}: orphan (run folder {place[0] or '.'!r} is not in {INDEX})")
            continue
        try:
            data = read_cassette_file(path)
        except ValueError as exc:
            problems.append(f"{rel}: {exc}")
            continue
        raw = path.read_bytes()
        for pattern in _SECRET_PATTERNS:
            if pattern.search(raw):
                problems.append(
                    f"{rel}: holds something shaped like a credential ({pattern.pattern[:30]!r}...)"
                )
        if not data["interactions"]:
            problems.append(f"{rel}: no interactions")
    for problem in problems:
        console.print(f"[red]problem[/red] {problem}", highlight=False)
    if problems:
        print(
            f"error: {len(problems)} problem(s) in {len(files)} cassette files (listed above)",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    console.print(f"{len(files)} cassette files checked, no problem")
