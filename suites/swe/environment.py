"""The tool environment of one swe task run: bash, a file editor and submit over a workspace.

Determinism policy (cassette replay matches on request bodies, so the same
actions must give byte-identical observations on every machine and run):

* the workspace root is a fresh temporary directory; every observation shows it
  as `display_root` (``/workspace``: the repository at ``/workspace/repo``), and
  commands and editor paths may use that name, which is mapped back to the real
  directory before anything runs. The harness's own virtualenv is shown as
  ``/opt/venv`` the same way;
* pytest / unittest timings (``in 0.12s``) and the version numbers of pytest's
  header line are masked;
* the execution backend gives commands a fixed environment (locale, time zone,
  no colour, no plugins of the harness) and reports truncation and timeouts in
  fixed words.

All of it lives in `deterministic()`. What a command prints about the world
outside the workspace (``ls -l`` dates, ``date``, random numbers) is not
masked: the simulator profiles do not run such commands.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.conversation import ToolCall, ToolResult, ToolSpec
from harness.errors import AmpbenchError
from suites.swe.workspace import TaskWorkspace, WorkspaceError

__all__ = [
    "BASH",
    "EDITOR",
    "SUBMIT",
    "TOOLS",
    "EnvSettings",
    "PathMap",
    "SweEnvironment",
    "deterministic",
    "elide",
]

BASH = ToolSpec(
    name="bash",
    description=(
        "Run one command with bash in the repository (a fresh shell each time, no input, killed after "
        "a timeout). Returns the exit code and the combined stdout and stderr."
    ),
    parameters={
        "type": "object",
        "properties": {"command": {"type": "string", "description": "The command line to run."}},
        "required": ["command"],
        "additionalProperties": False,
    },
)

EDITOR = ToolSpec(
    name="str_replace_editor",
    description=(
        "View, create and edit files. Paths are relative to the repository or absolute.\n"
        "* view: a file with line numbers (optionally only `view_range` [start, end], end -1 for the "
        "last line), or a directory's files two levels deep.\n"
        "* create: a new file with `file_text`; fails if the file exists.\n"
        "* str_replace: replace `old_str`, which must occur exactly once in the file (whitespace "
        "included), with `new_str` (empty to delete).\n"
        "* insert: insert `new_str` after line `insert_line` (0 inserts at the top)."
    ),
    parameters={
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert"]},
            "path": {"type": "string", "description": "File or directory."},
            "file_text": {"type": "string", "description": "create: content of the new file."},
            "old_str": {"type": "string", "description": "str_replace: the exact text to replace."},
            "new_str": {"type": "string", "description": "str_replace / insert: the new text."},
            "insert_line": {"type": "integer", "description": "insert: the line to insert after."},
            "view_range": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "view: [start, end] line numbers, 1-based; end -1 means the last line.",
            },
        },
        "required": ["command", "path"],
        "additionalProperties": False,
    },
)

SUBMIT = ToolSpec(
    name="submit",
    description="Hand in your work: the changes in the working tree are graded. Ends the task.",
    parameters={"type": "object", "properties": {}, "additionalProperties": False},
)

TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in (BASH, EDITOR, SUBMIT)}

# --------------------------------------------------------------------------- determinism

_PYTEST_OUTCOME = re.compile(
    r"\b(passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?|rerun|no tests ran)\b"
)
_DURATION = re.compile(r"\bin \d+(?:\.\d+)?s\b(?: \(\d+:\d\d:\d\d\))?")
_UNITTEST_RAN = re.compile(r"^(Ran \d+ tests?) in \d+(?:\.\d+)?s$", re.MULTILINE)
_PYTEST_HEADER = re.compile(r"^(platform \S+ -- Python )\S+(, pytest-)\S+(, pluggy-)\S+", re.MULTILINE)


@dataclass(frozen=True)
class PathMap:
    """Real directories and the fixed names observations show instead."""

    pairs: tuple[tuple[str, str], ...]
    """(real, shown), longest real path first so that nested paths map correctly."""

    @classmethod
    def for_workspace(cls, root: str | os.PathLike[str], display_root: str) -> PathMap:
        pairs: dict[str, str] = {}
        real = os.fspath(root)
        for form in {real, os.path.realpath(real), os.path.abspath(real)}:
            pairs[form] = display_root
        # The random directory name alone (`basename $(dirname $PWD)`) is volatile too.
        pairs.setdefault(os.path.basename(os.path.realpath(real)), os.path.basename(display_root))
        # The harness's virtualenv (its python runs agent commands) sits wherever
        # ampbench was installed; show it under one name everywhere.
        if sys.prefix != sys.base_prefix:
            for form in {sys.prefix, os.path.realpath(sys.prefix)}:
                pairs.setdefault(form, "/opt/venv")
        ordered = sorted(pairs.items(), key=lambda item: len(item[0]), reverse=True)
        return cls(tuple((r.rstrip("/") or "/", s) for r, s in ordered if r not in ("", "/")))

    def shown(self, text: str) -> str:
        for real, shown in self.pairs:
            text = text.replace(real, shown)
        return text

    def real(self, text: str) -> str:
        """Map the shown names back in a command or path the model wrote."""
        done: set[str] = set()
        for real, shown in sorted(self.pairs, key=lambda item: len(item[1]), reverse=True):
            if shown in done or not shown.startswith("/") or not real.startswith("/"):
                continue
            done.add(shown)
            # Only a whole path component: /workspace/x and "/workspace" but not /workspaces.
            pattern = re.compile(rf"(?<![\w.\-/]){re.escape(shown)}(?![\w.\-])")
            text = pattern.sub(lambda _m, r=real: r, text)
        return text


# bash's own error lines ("/usr/bin/bash: line 1: foo: command not found").
_SHELL_ERROR = re.compile(r"^(?:/usr)?(?:/bin/)?(?:ba)?sh: line \d+: ")


def _sort_shell_error_runs(lines: list[str]) -> list[str]:
    # Background jobs and pipeline stages start concurrently, so the order of
    # their "command not found" lines is a race (seen with a model that wrote
    # `a&amp;b`). Sorting each run of such lines makes the observation one value.
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, None]:
        if line is not None and _SHELL_ERROR.match(line):
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        if line is not None:
            out.append(line)
    return out


def deterministic(text: str, paths: PathMap) -> str:
    """The observation policy: same actions, same bytes, on every machine and run.

    Maps the workspace (and the harness's virtualenv) to their fixed names and
    masks volatile bits: pytest's and unittest's durations, pytest's version
    header, and the order of consecutive shell error lines of concurrent jobs.
    """
    text = paths.shown(text)
    lines = _sort_shell_error_runs(text.split("\n"))
    for i, line in enumerate(lines):
        if "in " in line and _PYTEST_OUTCOME.search(line):
            lines[i] = _DURATION.sub("in <duration>", line)
    text = "\n".join(lines)
    text = _UNITTEST_RAN.sub(r"\1 in <duration>", text)
    return _PYTEST_HEADER.sub(r"\1<version>\2<version>\3<version>", text)


def elide(text: str, max_chars: int) -> str:
    """Keep the head and tail of a long observation, saying how much was left out."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - head
    left_out = len(text) - head - tail
    return (
        f"{text[:head]}\n[ampbench: {left_out} characters elided from the middle of this output; "
        f"narrow the command (grep, head, sed -n) to see them]\n{text[-tail:]}"
    )


# --------------------------------------------------------------------------- the editor


class EditorError(Exception):
    """An editor command the model got wrong: its message is the observation."""


def _numbered(lines: Sequence[str], first: int) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(lines, start=first))


@dataclass
class Editor:
    """`str_replace_editor` over a workspace (local or Docker).

    Paths are relative to the repository or absolute (display names allowed);
    in a local workspace they must stay inside it, symlinks included.
    """

    workspace: TaskWorkspace
    paths: PathMap
    snippet_lines: int = 4

    def run(self, args: dict[str, Any]) -> str:
        command = args.get("command")
        raw_path = args.get("path")
        if not isinstance(raw_path, str) or not raw_path.strip():
            raise EditorError("Parameter `path` is required.")
        path = raw_path.strip()
        real = self.paths.real(path)
        if command == "view":
            return self._view(path, real, args.get("view_range"))
        if command == "create":
            return self._create(path, real, args.get("file_text"))
        if command == "str_replace":
            return self._str_replace(path, real, args.get("old_str"), args.get("new_str", ""))
        if command == "insert":
            return self._insert(path, real, args.get("insert_line"), args.get("new_str"))
        raise EditorError(f"Unknown command {command!r}; use one of view, create, str_replace, insert.")

    # --- file system access, local or through the backend -----------------------------------

    def _kind(self, real: str) -> str:
        """'file', 'dir' or 'missing'."""
        resolve = getattr(self.workspace, "resolve", None)
        if resolve is not None:
            try:
                full: Path = resolve(real)
            except WorkspaceError as exc:
                raise EditorError(f"{exc}.") from None
            return "dir" if full.is_dir() else "file" if full.exists() else "missing"
        quoted = shlex.quote(real)
        probe = self.workspace.run(
            f"if [ -d {quoted} ]; then echo dir; elif [ -e {quoted} ]; then echo file; fi"
        )
        return probe["output"].strip() or "missing"

    def _read(self, real: str) -> str:
        try:
            return self.workspace.read_text(real)
        except WorkspaceError as exc:
            raise EditorError(f"{exc}.") from None

    def _write(self, real: str, text: str) -> None:
        try:
            self.workspace.write_text(real, text)
        except WorkspaceError as exc:
            raise EditorError(f"{exc}.") from None

    def _file(self, path: str, real: str) -> str:
        kind = self._kind(real)
        if kind == "missing":
            raise EditorError(f"The path {path} does not exist.")
        if kind == "dir":
            raise EditorError(f"{path} is a directory; this command needs a file.")
        return self._read(real)

    def _listing(self, path: str, real: str) -> str:
        command = f"find {shlex.quote(real)} -maxdepth 2 -not -path '*/.*' | LC_ALL=C sort"
        result = self.workspace.run(command)
        listing = self.paths.shown(result["output"]).rstrip("\n")
        return f"Files and directories up to two levels below {path}, hidden ones left out:\n{listing}"

    # --- commands ------------------------------------------------------------------------

    def _view(self, path: str, real: str, view_range: Any) -> str:
        kind = self._kind(real)
        if kind == "missing":
            raise EditorError(f"The path {path} does not exist.")
        if kind == "dir":
            if view_range is not None:
                raise EditorError("`view_range` applies to files, not directories.")
            return self._listing(path, real)
        lines = self._read(real).split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # a final newline ends the last line; it does not start another
        first, last = 1, len(lines)
        if view_range is not None:
            if (
                not isinstance(view_range, list)
                or len(view_range) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in view_range)
            ):
                raise EditorError("`view_range` must be two integers, [start, end].")
            first, last = view_range
            if last == -1:
                last = len(lines)
            if not 1 <= first <= max(len(lines), 1):
                raise EditorError(f"`view_range` start {first} is outside the file's lines 1-{len(lines)}.")
            if last < first or last > len(lines):
                raise EditorError(
                    f"`view_range` end {view_range[1]} must be -1 or between {first} and {len(lines)}."
                )
        shown = _numbered(lines[first - 1 : last], first)
        return f"{path} (lines {first}-{last} of {len(lines)}):\n{shown}"

    def _create(self, path: str, real: str, file_text: Any) -> str:
        if not isinstance(file_text, str):
            raise EditorError("Parameter `file_text` is required for create.")
        if self._kind(real) != "missing":
            raise EditorError(f"{path} already exists; create does not overwrite (use str_replace).")
        self._write(real, file_text)
        return f"Created {path} ({len(file_text.splitlines())} lines)."

    def _snippet(self, text: str, start_line: int, end_line: int) -> str:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        first = max(1, start_line - self.snippet_lines)
        last = min(len(lines), end_line + self.snippet_lines)
        return _numbered(lines[first - 1 : last], first)

    def _str_replace(self, path: str, real: str, old: Any, new: Any) -> str:
        if not isinstance(old, str) or old == "":
            raise EditorError("Parameter `old_str` is required for str_replace and must not be empty.")
        if new is None:
            new = ""
        if not isinstance(new, str):
            raise EditorError("Parameter `new_str` must be a string.")
        text = self._file(path, real)
        count = text.count(old)
        if count == 0:
            raise EditorError(
                f"No replacement was made: old_str does not occur verbatim in {path}. "
                "Check whitespace and indentation (view the file first)."
            )
        if count > 1:
            starts = []
            at = text.find(old)
            while at != -1:
                starts.append(text.count("\n", 0, at) + 1)
                at = text.find(old, at + 1)
            raise EditorError(
                f"No replacement was made: old_str occurs {count} times in {path} (at lines "
                f"{', '.join(map(str, starts))}). Include more surrounding lines to make it unique."
            )
        at = text.find(old)
        updated = text[:at] + new + text[at + len(old) :]
        self._write(real, updated)
        start = updated.count("\n", 0, at) + 1
        end = start + new.count("\n")
        return (
            f"Edited {path}. Lines {max(1, start - self.snippet_lines)} onwards now read:\n"
            f"{self._snippet(updated, start, end)}\n"
            "Check that the change is what you intended; edit again if it is not."
        )

    def _insert(self, path: str, real: str, insert_line: Any, new: Any) -> str:
        if not isinstance(new, str):
            raise EditorError("Parameter `new_str` is required for insert.")
        if not isinstance(insert_line, int) or isinstance(insert_line, bool):
            raise EditorError("Parameter `insert_line` (an integer) is required for insert.")
        text = self._file(path, real)
        lines = text.split("\n")
        trailing = bool(lines) and lines[-1] == ""
        if trailing:
            lines.pop()
        if not 0 <= insert_line <= len(lines):
            raise EditorError(f"`insert_line` {insert_line} must be between 0 and {len(lines)}.")
        added = new.split("\n")
        if added and added[-1] == "" and len(added) > 1:
            added.pop()  # a trailing newline in new_str does not add an empty line
        lines[insert_line:insert_line] = added
        updated = "\n".join(lines) + ("\n" if trailing or not text else "")
        self._write(real, updated)
        return (
            f"Inserted {len(added)} line(s) after line {insert_line} of {path}:\n"
            f"{self._snippet(updated, insert_line + 1, insert_line + len(added))}\n"
            "Check that the change is what you intended; edit again if it is not."
        )


# --------------------------------------------------------------------------- the environment


@dataclass(frozen=True)
class EnvSettings:
    """How one environment runs commands and shows their results."""

    render_observation: Callable[[int | None, str], str]
    """The config's observation template: (returncode, output) -> text."""
    timeout_s: float = 60.0
    max_output_bytes: int = 100_000
    observation_max_chars: int = 10_000
    display_root: str = "/workspace"
    submit_sentinel: str | None = None
    """bash-only: a command whose output starts with this line submits."""


class WorkspaceUnavailable(AmpbenchError):
    """The task's workspace could not be made; the task ends as an error before any model call."""


@dataclass
class SweEnvironment:
    """Runs the tool calls of one task run in its own workspace.

    The workspace is made on construction; when that fails (repository not
    found, Docker image missing) construction raises `WorkspaceUnavailable`
    with the one-line reason, and the runner ends that task as an error before
    any model call while the other tasks run on.
    """

    task_id: str
    settings: EnvSettings
    make_workspace: Callable[[], TaskWorkspace]
    workspace: TaskWorkspace | None = None
    finished: bool = False
    """Set by `submit` (or the bash-only sentinel): the loop ends the task."""
    submitted: bool = False
    paths: PathMap = field(default_factory=lambda: PathMap(()))

    def __post_init__(self) -> None:
        try:
            self.workspace = self.make_workspace()
        except (AmpbenchError, OSError) as exc:
            reason = str(exc) if isinstance(exc, AmpbenchError) else f"{type(exc).__name__}: {exc}"
            raise WorkspaceUnavailable(reason) from exc
        root = getattr(self.workspace, "root", None)
        if root is not None:
            self.paths = PathMap.for_workspace(root, self.settings.display_root)

    @property
    def repo_dir(self) -> str:
        """The checkout as the model sees it."""
        if self.workspace is None:
            return f"{self.settings.display_root}/repo"
        return self.paths.shown(self.workspace.repo_path)

    async def execute(self, call: ToolCall) -> ToolResult:
        # Commands block; a thread keeps the other task runs' model calls going.
        return await asyncio.to_thread(self.execute_sync, call)

    def execute_sync(self, call: ToolCall) -> ToolResult:
        if self.finished:
            return ToolResult(call.id, call.name, "The task was already submitted; nothing was run.", True)
        args = call.arguments if isinstance(call.arguments, dict) else {}
        if call.name == "bash":
            content, is_error = self._bash(args)
            return ToolResult(call.id, call.name, content, is_error)
        if call.name == "str_replace_editor":
            try:
                content, is_error = Editor(self.workspace, self.paths).run(args), False
            except EditorError as exc:
                content, is_error = str(exc), True
        elif call.name == "submit":
            self.finished = self.submitted = True
            content, is_error = "Submitted: the changes in the working tree will be graded.", False
        else:
            content, is_error = f"Unknown tool {call.name!r} (available: {', '.join(TOOLS)}).", True
        shown = elide(deterministic(content, self.paths), self.settings.observation_max_chars)
        return ToolResult(call.id, call.name, shown, is_error)

    def _bash(self, args: dict[str, Any]) -> tuple[str, bool]:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            return "Parameter `command` is required: the command line to run.", True
        assert self.workspace is not None
        result = self.workspace.run(
            self.paths.real(command),
            timeout_s=self.settings.timeout_s,
            max_output_bytes=self.settings.max_output_bytes,
        )
        output = result["output"]
        if result["exception"]:
            output += (
                "\n" if output else ""
            ) + f"[ampbench: the command could not run: {result['exception']}]"
        sentinel = self.settings.submit_sentinel
        if sentinel is not None and output.lstrip().split("\n", 1)[0].strip() == sentinel:
            self.finished = self.submitted = True
        if output and not output.endswith("\n"):
            output += "\n"
        # Elide the output before it goes into the template, so the frame always shows.
        output = elide(deterministic(output, self.paths), self.settings.observation_max_chars)
        rendered = self.settings.render_observation(result["returncode"], output)
        return rendered, bool(result["timed_out"] or result["exception"])

    async def model_patch(self) -> str:
        """The workspace diff against base_commit: what gets graded."""
        if self.workspace is None:
            return ""
        return await asyncio.to_thread(self.workspace.diff)

    async def close(self) -> None:
        """Kill the commands still running (a cancelled task run), remove the workspace."""
        workspace, self.workspace = self.workspace, None
        if workspace is None:
            return
        # Right away, on the event loop: a command blocking a worker thread dies now instead of
        # at its timeout, whether or not a thread is free for the rest of the closing.
        abort = getattr(workspace, "abort", None)
        if abort is not None:
            abort()
        try:
            await asyncio.to_thread(workspace.close)
        except asyncio.CancelledError:
            workspace.close()  # interrupted: remove it here and now
            raise

    def close_sync(self) -> None:
        workspace, self.workspace = self.workspace, None
        if workspace is not None:
            workspace.close()
