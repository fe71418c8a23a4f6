"""The original SnitchBench result transcripts (`<model>--<test>--<n>.md`).

SnitchBench (t3dotgg/SnitchBench) writes one markdown file per test run: a
`# Test Run: <model> - <test>--<n>` title, `## Duration`, optionally
`## Tool Calls` (a count) and a `## ⚠️ ERROR OCCURRED` section, the system
prompt, then one `## USER` / `## ASSISTANT` section per message, each opened
by an `**ID:**` line. The AI SDK returns one assistant message per step, so
each assistant section is one model call; its `### Tool Call: <name>` blocks
are the tool calls it requested. All tool results of one user turn are
appended to that turn's last assistant section, so results are matched to
calls by tool call id. The files hold no token counts: token columns stay
empty. A run that ended in the error section lost the call in flight: it is
counted as one failed exchange.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.ingest._common import IngestFormatError, Origin, TaskRecord, exchange_row, notes_text, tool_row

NAME = "snitchbench"
SOURCE = "ingest:snitchbench"
LIMITS = [
    "SnitchBench transcripts hold no token counts: token columns are empty (unknown), not zero.",
    "SnitchBench transcripts show one section per model call but no HTTP attempts: retries are "
    "invisible, so exchanges are a lower bound; a run that ended in an error counts one failed "
    "exchange for the call in flight.",
]

_TITLE = re.compile(r"^# Test Run: (?P<model>.+?) - (?P<run>\S+)\s*$", re.MULTILINE)
_SECTION = re.compile(r"^## (?P<role>USER|ASSISTANT)\n\*\*ID:\*\* ?(?P<id>.*)$", re.MULTILINE)
_DURATION = re.compile(r"^## Duration\n\n(?P<s>[\d.]+)s\s*$", re.MULTILINE)
_TOOL_COUNT = re.compile(r"^## Tool Calls\n\n(?P<n>\d+)\s*$", re.MULTILINE)
_ERROR = re.compile(r"^## ⚠️ ERROR OCCURRED\n\n\*\*Error Message:\*\* (?P<msg>.*)$", re.MULTILINE)
_CALL = re.compile(r"^### Tool Call: (?P<name>.+?)\n\n\*\*Tool Call ID:\*\* (?P<id>.+?)\s*$", re.MULTILINE)
_RESULT = re.compile(
    r"^### Tool Result\n\n\*\*Tool Call ID:\*\* (?P<id>.+?)\n\n\*\*Result:\*\*\n```json\n(?P<json>.*?)\n```\n",
    re.MULTILINE | re.DOTALL,
)
_REASONING = re.compile(
    r"^### Reasoning\n\n```\n(?P<text>.*?)\n```\n(?=\n(?:### |---\n|$))", re.MULTILINE | re.DOTALL
)
_RUN_ID = re.compile(r"^(?P<test>.+?)(?:--|-)(?P<n>\d+)$")


def sniff(name: str, head: bytes, tail: bytes) -> bool:
    return name.endswith(".md") and head.startswith(b"# Test Run: ")


def _result_ok(text: str) -> bool | None:
    """A tool result reports failure with `success: false` or an `error` field."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict):
        return not (value.get("success") is False or value.get("error"))
    return True


def read(path: Path, *, run_id: str) -> list[TaskRecord]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IngestFormatError(f"not UTF-8 text ({exc})") from None
    title = _TITLE.search(text)
    if title is None:
        raise IngestFormatError("no '# Test Run:' title: not a SnitchBench transcript")
    model, run = title.group("model").strip(), title.group("run").strip()
    stem = path.name.removesuffix(".md")
    parts = stem.split("--")
    if len(parts) == 3 and parts[2].isdigit():
        model, test, repeat = parts[0], parts[1], int(parts[2])
    else:
        match = _RUN_ID.match(run)
        test, repeat = (match.group("test"), int(match.group("n"))) if match else (run, 0)

    origin = Origin(run_id=run_id, task_id=test, model=model, repeat=repeat)
    record = TaskRecord(origin)
    notes: list[str] = []
    sections = list(_SECTION.finditer(text))
    if not sections:
        raise IngestFormatError("no '## USER' / '## ASSISTANT' sections")

    results: dict[str, tuple[bool | None, int]] = {}
    for match in _RESULT.finditer(text):
        results[match.group("id").strip()] = (
            _result_ok(match.group("json")),
            len(match.group("json").encode()),
        )

    user_turns = 0
    step = 0
    for index, section in enumerate(sections):
        body = text[section.end() : sections[index + 1].start() if index + 1 < len(sections) else len(text)]
        if section.group("role") == "USER":
            user_turns += 1
            continue
        step += 1
        calls = [(c.group("name").strip(), c.group("id").strip()) for c in _CALL.finditer(body)]
        reasoning = sum(len(r.group("text")) for r in _REASONING.finditer(body))
        record.exchanges.append(
            exchange_row(
                origin,
                SOURCE,
                step=step,
                status=200,
                tool_calls=len(calls),
                tool_names=[name for name, _ in calls],
                visible_reasoning_chars=reasoning,
            )
        )
        for name, call_id in calls:
            ok, size = results.get(call_id, (None, None))
            record.tool_calls.append(
                tool_row(
                    origin,
                    SOURCE,
                    step=step,
                    tool=name,
                    ok=ok,
                    tool_call_id=call_id,
                    output_bytes=size,
                    user_turn=user_turns,
                )
            )

    error = _ERROR.search(text[: sections[0].start()])
    if error is not None:
        record.exchanges.append(
            exchange_row(origin, SOURCE, step=step + 1, status=None, error=error.group("msg").strip())
        )
    declared = _TOOL_COUNT.search(text[: sections[0].start()])
    if declared is not None and int(declared.group("n")) != len(record.tool_calls):
        notes.append(f"header says {declared.group('n')} tool calls, sections show {len(record.tool_calls)}")
    duration = _DURATION.search(text[: sections[0].start()])
    record.row.update(
        status="error" if error else "ok",
        stop_reason="error" if error else "completed",
        error=error.group("msg").strip() if error else None,
        user_turns=user_turns,
        model_calls=step,
        steps=step,
        wall_s=float(duration.group("s")) if duration else None,
        format="snitchbench-md",
        ingest_notes=notes_text(notes),
    )
    return [record]
