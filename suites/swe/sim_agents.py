"""Simulated SWE agents for `harness.sim`: they act over the swe suite's real tools on the bundled mini suite.

The simulator finds them by name (`sim:swe-oracle` and so on) through its
profile registry, which imports this module on first lookup
(`harness.sim.profiles.PROFILE_PLUGINS`): they live with the suite they know,
and the harness never imports a suite at import time.

Each profile recognises the instance by finding its problem statement in the
first user message (against `suites.swe.instances.bundled_instances`, and the
real instances a swe suite in this process was given: `know_instances`; a
simulator serving from a process of its own reads them from the files named by
``AMPBENCH_SIM_SWE_INSTANCES``), builds
a fixed plan of actions from it, and answers with step *k* of the plan, where
*k* is the number of assistant messages already in the conversation. So the
same conversation always gets the same answer, and the number of model calls
per instance is known in advance (`plan_length`).

The scaffold is read from the request: with the `bash`, `str_replace_editor`
and `submit` tools offered the profile calls them; with no tools it writes
mini-swe-agent style responses (a THOUGHT and one ```bash block) and submits
with `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`.

* `swe-oracle`: lists the files, views those the gold patch touches, applies the
  gold patch (tools: one `str_replace` per hunk through the editor; bash-only:
  `git apply` of a heredoc), runs the tests, submits. Resolves the mini suite.
* `swe-explorer`: looks around first (ls, git ls-files, README, grep, the tests
  before, several files, a range view), then makes the oracle's edits one hunk
  at a time, runs the tests again, looks at the diff and submits.
* `swe-flailer`: views a file, sends one response the scaffold cannot read (no
  tool call / two bash blocks), makes a plausible but wrong edit (the instance's
  `obvious.patch` where there is one, else a comment), tries an edit that does
  not match, runs the tests, gives up and submits. Resolves nothing.

On a real instance (not bundled) the oracle and the explorer apply the whole
gold patch with ``git apply`` through bash, and the flailer's edits are a
comment and a failing replacement: the pipeline agent → patch → grade can be
checked offline on real SWE-bench instances. An instance the profile does not
know gets a short exploration and a submit.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.sim.view import Reply, ReplyCall, View
from suites.swe.instances import Instance, bundled_instances, bundled_project_dir, read_instances

__all__ = ["SUBMIT_SENTINEL", "SweExplorer", "SweFlailer", "SweOracle", "parse_patch", "plan_length"]

SUBMIT_SENTINEL = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
INSTANCES_ENV = "AMPBENCH_SIM_SWE_INSTANCES"
"""Instance files (os.pathsep-separated) whose gold patches a simulator in its own process knows."""
_SWE_TOOLS = frozenset({"bash", "str_replace_editor", "submit"})
TEST_COMMAND = "python -m pytest -q"

Kind = Literal["bash", "view", "str_replace", "create", "insert", "patch", "submit", "malformed"]
Mode = Literal["tools", "bash-only"]


@dataclass(frozen=True)
class Action:
    """One step of a plan, before it is rendered for a scaffold."""

    kind: Kind
    thought: str
    command: str = ""
    path: str = ""
    old: str = ""
    new: str = ""
    line: int = 0
    view_range: tuple[int, int] | None = None
    patch: str = ""


# --------------------------------------------------------------------------- patches


@dataclass
class Hunk:
    old_start: int
    old_lines: list[str] = field(default_factory=list)
    new_lines: list[str] = field(default_factory=list)
    header: str = ""
    """The text after the second @@ (git's function context)."""


@dataclass
class FileChange:
    path: str
    kind: Literal["modify", "create", "delete"]
    hunks: list[Hunk] = field(default_factory=list)


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")


def _strip_prefix(name: str) -> str:
    name = name.split("\t")[0].strip()
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse_patch(patch: str) -> list[FileChange]:
    """The files and hunks of a unified diff (git's format)."""
    changes: list[FileChange] = []
    lines = patch.split("\n")
    i = 0
    old_name = new_name = ""
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- "):
            old_name = line[4:]
        elif line.startswith("+++ "):
            new_name = line[4:]
            if old_name.strip() == "/dev/null":
                changes.append(FileChange(_strip_prefix(new_name), "create"))
            elif new_name.strip() == "/dev/null":
                changes.append(FileChange(_strip_prefix(old_name), "delete"))
            else:
                changes.append(FileChange(_strip_prefix(new_name), "modify"))
        elif (match := _HUNK.match(line)) and changes:
            old_count = int(match.group(2) if match.group(2) is not None else 1)
            new_count = int(match.group(4) if match.group(4) is not None else 1)
            hunk = Hunk(int(match.group(1)), header=match.group(5))
            i += 1
            while i < len(lines) and (old_count > 0 or new_count > 0):
                body = lines[i]
                tag, text = (body[:1], body[1:]) if body else (" ", "")
                if tag == " ":
                    hunk.old_lines.append(text)
                    hunk.new_lines.append(text)
                    old_count -= 1
                    new_count -= 1
                elif tag == "-":
                    hunk.old_lines.append(text)
                    old_count -= 1
                elif tag == "+":
                    hunk.new_lines.append(text)
                    new_count -= 1
                elif tag != "\\":  # "\ No newline at end of file" carries no line
                    break
                i += 1
            changes[-1].hunks.append(hunk)
            continue
        i += 1
    return changes


def _apply_hunks(text: str, hunks: list[Hunk]) -> str:
    """The file after the hunks, applied by line number (the patch fits the base file)."""
    lines = text.split("\n")
    out: list[str] = []
    at = 0
    for hunk in hunks:
        start = max(hunk.old_start - 1, 0) if hunk.old_lines else hunk.old_start
        out.extend(lines[at:start])
        out.extend(hunk.new_lines)
        at = start + len(hunk.old_lines)
    out.extend(lines[at:])
    return "\n".join(out)


def editor_steps(change: FileChange, original: str | None) -> list[Action]:
    """The editor actions that make one file change: a str_replace per hunk where each
    hunk's old text is unique at that point, else one replacement of the whole file."""
    path = change.path
    if change.kind == "create":
        text = "\n".join(line for hunk in change.hunks for line in hunk.new_lines) + "\n"
        return [Action("create", f"I'll create {path}.", path=path, new=text)]
    if change.kind == "delete":
        return [
            Action("bash", f"{path} is no longer needed; I'll remove it.", command=f"rm {shlex.quote(path)}")
        ]
    steps: list[Action] = []
    current = original
    for index, hunk in enumerate(change.hunks, start=1):
        old, new = "\n".join(hunk.old_lines), "\n".join(hunk.new_lines)
        if current is not None and (not old or current.count(old) != 1):
            whole = _apply_hunks(original or "", change.hunks)
            thought = f"The context in {path} repeats, so I'll replace the whole file content in one edit."
            return [Action("str_replace", thought, path=path, old=original or "", new=whole)]
        where = f" (change {index} of {len(change.hunks)})" if len(change.hunks) > 1 else ""
        steps.append(Action("str_replace", f"Now I'll edit {path}{where}.", path=path, old=old, new=new))
        if current is not None:
            current = current.replace(old, new, 1)
    return steps


# --------------------------------------------------------------------------- reading the request


@functools.cache
def _bundled() -> tuple[tuple[str, str, str, Path | None], ...]:
    """(problem statement, instance id, gold patch, project dir) of the bundled instances."""
    return tuple(
        (inst.problem_statement.strip(), inst.instance_id, inst.patch, bundled_project_dir(inst.instance_id))
        for inst in bundled_instances()
    )


@dataclass(frozen=True)
class Known:
    """What a profile knows about the instance it works on."""

    instance_id: str
    gold: str
    project: Path | None

    def original(self, path: str) -> str | None:
        if self.project is None:
            return None
        file = self.project / "repo" / path
        return file.read_text(encoding="utf-8") if file.is_file() else None

    def obvious(self) -> str | None:
        if self.project is None:
            return None
        file = self.project / "obvious.patch"
        return file.read_text(encoding="utf-8") if file.is_file() else None


# Instances that are not bundled (a real SWE-bench file), by problem statement: the suite
# tells the simulator, which plays a model that knows every gold patch and runs in this process.
_KNOWN: dict[str, Known] = {}
_KNOWN_LOCK = threading.Lock()


def know_instances(instances: Iterable[Instance]) -> None:
    """Let the simulated agents recognise `instances` (those with a gold patch) by their problem statement."""
    with _KNOWN_LOCK:
        for inst in instances:
            if inst.patch and inst.problem_statement.strip():
                _KNOWN[inst.problem_statement.strip()] = Known(inst.instance_id, inst.patch, None)


@functools.cache
def _from_environment() -> None:
    # A simulator in a process of its own (`ampbench sim serve`) learns the instances from files.
    for path in filter(None, os.environ.get(INSTANCES_ENV, "").split(os.pathsep)):
        know_instances(read_instances(path).instances)


def find_instance(first_user_text: str) -> Known | None:
    _from_environment()
    for statement, instance_id, gold, project in _bundled():
        if statement and statement in first_user_text:
            return Known(instance_id, gold, project)
    with _KNOWN_LOCK:
        known = list(_KNOWN.items())
    return next((k for statement, k in known if statement in first_user_text), None)


def _observations(view: View) -> list[str]:
    """What followed each assistant message: its tool results or the next user message."""
    out: list[str] = []
    messages = view.messages
    for i, message in enumerate(messages):
        if message.role != "assistant":
            continue
        after = messages[i + 1] if i + 1 < len(messages) else None
        if after is None:
            out.append("")
        elif after.tool_results:
            out.append("\n".join(r.content for r in after.tool_results))
        else:
            out.append(after.text)
    return out


def _listed_files(observation: str) -> list[str]:
    """File paths in a `git ls-files` observation (one per line)."""
    body = observation.split("<output>", 1)[-1].split("</output>", 1)[0]
    return [line.strip() for line in body.splitlines() if re.fullmatch(r"[\w./-]+\.\w+", line.strip())]


def _sources(files: list[str]) -> list[str]:
    return [
        f
        for f in files
        if f.endswith(".py")
        and not f.startswith(("tests/", "test/"))
        and not f.endswith("__init__.py")
        and "/test_" not in f
        and not f.startswith("test_")
    ]


# --------------------------------------------------------------------------- plans


def _gold_changes(known: Known) -> list[FileChange]:
    return parse_patch(known.gold)


def _edit_actions(known: Known, changes: list[FileChange]) -> list[Action]:
    if known.project is None:
        # A real instance: its files are not at hand to plan unique edits, so the gold patch goes
        # in whole through bash (`git apply`), as a bash-only agent would.
        return [Action("patch", "I know the fix; I'll apply it as a patch.", patch=known.gold)]
    return [step for change in changes for step in editor_steps(change, known.original(change.path))]


def _unknown_plan(listing: list[str], *, thorough: bool) -> list[Action]:
    plan = [Action("bash", "I'll see which files the repository tracks.", command="git ls-files")]
    if thorough:
        plan += [Action("view", f"Let me read {path}.", path=path) for path in _sources(listing)[:3]]
        plan.append(Action("bash", "Let me run the test suite.", command=TEST_COMMAND))
    plan.append(Action("bash", "Let me check the state of the working tree.", command="git status --short"))
    plan.append(Action("submit", "I could not pin the problem down, so I'm submitting the tree as it is."))
    return plan


def oracle_plan(known: Known | None, mode: Mode, observations: list[str]) -> list[Action]:
    if known is None:
        return _unknown_plan(_listed_files(observations[0]) if observations else [], thorough=False)
    changes = _gold_changes(known)
    plan = [Action("bash", "I'll start by listing the files of the repository.", command="git ls-files")]
    plan += [
        Action("view", f"The issue points at {c.path}; let me read it.", path=c.path)
        for c in changes
        if c.kind != "create"
    ]
    if mode == "tools":
        plan += _edit_actions(known, changes)
    else:
        plan.append(Action("patch", "I know the fix; I'll apply it as a patch.", patch=known.gold))
    plan.append(Action("bash", "Now I'll run the tests to check the fix.", command=TEST_COMMAND))
    plan.append(Action("submit", "The fix is in place and the tests pass, so I'll submit."))
    return plan


def _grep_word(changes: list[FileChange], fallback: str) -> str:
    for change in changes:
        for hunk in change.hunks:
            match = re.search(r"\b(?:def|class)\s+(\w+)", hunk.header)
            if match:
                return match.group(1)
    return fallback


def explorer_plan(known: Known | None, mode: Mode, observations: list[str]) -> list[Action]:
    listing = _listed_files(observations[1]) if len(observations) > 1 else []
    if known is None:
        head = [Action("bash", "Let me get my bearings in the repository.", command="ls")]
        return head + _unknown_plan(listing, thorough=True)
    changes = _gold_changes(known)
    touched = [c.path for c in changes if c.kind == "modify"]
    package = touched[0].split("/", 1)[0] if touched else "."
    plan = [
        Action("bash", "Let me get my bearings in the repository.", command="ls"),
        Action("bash", "Which files does the repository track?", command="git ls-files"),
    ]
    if "README.md" in listing or not listing:
        plan.append(
            Action("bash", "The README should explain what the package does.", command="cat README.md")
        )
    word = _grep_word(changes, package)
    plan.append(
        Action(
            "bash",
            f"Let me find where `{word}` is defined and used.",
            # git grep lists files in path order; `grep -r` in directory order, which differs
            # between file systems (ext4 hashes names with a per-disk seed), so a recording
            # would not replay on another machine.
            command=f"git grep -n {shlex.quote(word)} -- '*.py'",
        )
    )
    plan.append(Action("bash", "Before changing anything, let me run the tests.", command=TEST_COMMAND))
    others = [f for f in _sources(listing) if f not in touched][:2]
    for path in others + touched:
        plan.append(Action("view", f"Let me read {path}.", path=path))
    first = next((c for c in changes if c.kind == "modify" and c.hunks), None)
    if first is not None:
        hunk = first.hunks[0]
        start = max(1, hunk.old_start - 3)
        end = hunk.old_start + len(hunk.old_lines) + 2
        original = known.original(first.path)
        if original is not None:
            end = min(end, len(original.rstrip("\n").split("\n")))
        plan.append(
            Action(
                "view",
                f"The problem is around line {hunk.old_start} of {first.path}; let me look closely.",
                path=first.path,
                view_range=(start, end),
            )
        )
    plan += _edit_actions(known, changes)
    plan.append(Action("bash", "Let me run the tests again after the change.", command=TEST_COMMAND))
    plan.append(Action("bash", "Let me review the complete diff.", command="git diff"))
    plan.append(Action("submit", "The diff looks right and the tests pass; submitting."))
    return plan


def flailer_plan(known: Known | None, mode: Mode, observations: list[str]) -> list[Action]:
    if known is None:
        return _unknown_plan(_listed_files(observations[0]) if observations else [], thorough=False)
    changes = _gold_changes(known)
    target = next((c.path for c in changes if c.kind == "modify"), None) or "README.md"
    plan = [
        Action("bash", "Let me look at the files.", command="git ls-files"),
        Action("view", f"{target} looks relevant.", path=target),
        Action("malformed", "I think I see the problem. It should be a quick fix."),
    ]
    obvious = known.obvious()
    if obvious:
        thought = "The simplest fix is to reject the bad input outright."
        plan += [
            Action(a.kind, thought, path=a.path, old=a.old, new=a.new)
            for change in parse_patch(obvious)
            for a in editor_steps(change, known.original(change.path))
        ]
    else:
        plan.append(
            Action(
                "insert",
                "I'm not sure where the bug is; I'll leave a note for now.",
                path=target,
                line=0,
                new="# TODO: revisit the reported issue; the logic below looks suspicious.\n",
            )
        )
    plan.append(
        Action(
            "str_replace",
            "Maybe the helper needs a guard.",
            path=target,
            old="def _fix_the_bug(value):\n    return value",
            new="def _fix_the_bug(value):\n    return value or None",
        )
    )
    plan.append(Action("bash", "Let me run the tests.", command=TEST_COMMAND))
    plan.append(Action("submit", "I can't make more progress on this; submitting what I have."))
    return plan


PLANS = {"swe-oracle": oracle_plan, "swe-explorer": explorer_plan, "swe-flailer": flailer_plan}


def plan_length(profile: str, instance_id: str, mode: Mode) -> int:
    """Model calls the profile makes on a bundled instance (for tests and docs).

    Plans that read earlier observations (the explorer's file listing) are built
    from the bundled tree's `git ls-files` here.
    """
    known = next(
        (Known(iid, gold, project) for _, iid, gold, project in _bundled() if iid == instance_id), None
    )
    listing = ""
    if known is not None and known.project is not None:
        repo = known.project / "repo"
        files = sorted(
            p.relative_to(repo).as_posix()
            for p in repo.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
        )
        listing = "<output>\n" + "\n".join(files) + "\n</output>"
    return len(PLANS[profile](known, mode, [listing, listing]))


# --------------------------------------------------------------------------- rendering


def _python_edit(path: str, old: str, new: str) -> str:
    # repr() gives valid Python literals for any text, so the script never breaks on quotes.
    return (
        "python - <<'AMPBENCH_EOF'\n"
        "from pathlib import Path\n"
        f"path = Path({path!r})\n"
        "text = path.read_text()\n"
        f"old = {old!r}\n"
        f"new = {new!r}\n"
        "assert text.count(old) == 1, f'old text found {text.count(old)} times'\n"
        "path.write_text(text.replace(old, new, 1))\n"
        "print('edited', path)\n"
        "AMPBENCH_EOF"
    )


def _python_insert(path: str, line: int, new: str) -> str:
    return (
        "python - <<'AMPBENCH_EOF'\n"
        "from pathlib import Path\n"
        f"path = Path({path!r})\n"
        "lines = path.read_text().splitlines(keepends=True)\n"
        f"lines[{line}:{line}] = [{new!r}]\n"
        "path.write_text(''.join(lines))\n"
        "print('inserted into', path)\n"
        "AMPBENCH_EOF"
    )


def _bash_command(action: Action) -> str:
    quoted = shlex.quote(action.path)
    if action.kind == "bash":
        return action.command
    if action.kind == "view":
        if action.view_range is not None:
            start, end = action.view_range
            return f"nl -ba {quoted} | sed -n '{start},{end}p'"
        return f"cat -n {quoted}"
    if action.kind == "str_replace":
        return _python_edit(action.path, action.old, action.new)
    if action.kind == "insert":
        return _python_insert(action.path, action.line, action.new)
    if action.kind == "create":
        body = action.new if action.new.endswith("\n") else action.new + "\n"
        return f"mkdir -p \"$(dirname {quoted})\" && cat > {quoted} <<'AMPBENCH_EOF'\n{body}AMPBENCH_EOF"
    if action.kind == "patch":
        body = action.patch if action.patch.endswith("\n") else action.patch + "\n"
        return f"git apply --verbose - <<'AMPBENCH_PATCH'\n{body}AMPBENCH_PATCH"
    if action.kind == "submit":
        return f"echo {SUBMIT_SENTINEL}"
    raise ValueError(f"no bash form for {action.kind}")


def _tool_call(action: Action) -> ReplyCall:
    if action.kind == "bash":
        return ReplyCall("bash", {"command": action.command})
    if action.kind == "submit":
        return ReplyCall("submit", {})
    if action.kind == "view":
        args: dict[str, object] = {"command": "view", "path": action.path}
        if action.view_range is not None:
            args["view_range"] = list(action.view_range)
        return ReplyCall("str_replace_editor", args)
    if action.kind == "str_replace":
        return ReplyCall(
            "str_replace_editor",
            {"command": "str_replace", "path": action.path, "old_str": action.old, "new_str": action.new},
        )
    if action.kind == "insert":
        return ReplyCall(
            "str_replace_editor",
            {"command": "insert", "path": action.path, "insert_line": action.line, "new_str": action.new},
        )
    if action.kind == "create":
        return ReplyCall(
            "str_replace_editor", {"command": "create", "path": action.path, "file_text": action.new}
        )
    if action.kind == "patch":
        return ReplyCall("bash", {"command": _bash_command(action)})
    raise ValueError(f"no tool call for {action.kind}")


def render(action: Action, mode: Mode) -> Reply:
    if mode == "tools":
        if action.kind == "malformed":
            return Reply(text=action.thought)  # no tool call: the scaffold's reminder comes back
        return Reply(text=action.thought, tool_calls=[_tool_call(action)])
    if action.kind == "malformed":
        # Two blocks where one is allowed: the scaffold rejects it as a format error.
        return Reply(
            text=f"THOUGHT: {action.thought}\n\n```bash\ngit status\n```\n\nand then\n\n```bash\ngit diff\n```"
        )
    return Reply(text=f"THOUGHT: {action.thought}\n\n```bash\n{_bash_command(action)}\n```")


# --------------------------------------------------------------------------- the profiles


@dataclass(frozen=True)
class _SweProfile:
    name: str
    description: str

    def respond(self, view: View, rng_key: bytes) -> Reply:
        names = {tool.name for tool in view.offered_tools}
        if names and not names >= _SWE_TOOLS:
            return Reply(
                text=f"{self.name} only works on the swe suite (tools: bash, str_replace_editor, submit)."
            )
        mode: Mode = "tools" if names else "bash-only"
        first = next((m.text for m in view.messages if m.role == "user"), "")
        known = find_instance(first)
        observations = _observations(view)
        step = sum(1 for m in view.messages if m.role == "assistant")
        plan = PLANS[self.name](known, mode, observations)
        action = plan[step] if step < len(plan) else plan[-1]
        return render(action, mode)


SweOracle = _SweProfile(
    "swe-oracle",
    "swe suite: lists files, views the gold patch's files, applies the gold patch through the editor "
    "(bash-only: git apply), runs the tests, submits",
)
SweExplorer = _SweProfile(
    "swe-explorer",
    "swe suite: explores at length (ls, grep, README, tests before, several files), then the oracle's "
    "edits hunk by hunk, tests again, git diff, submit",
)
SweFlailer = _SweProfile(
    "swe-flailer",
    "swe suite: one unreadable response, a plausible but wrong edit, a failing edit, tests, submits unresolved",
)
