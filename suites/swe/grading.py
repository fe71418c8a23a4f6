"""Grading a model patch the way SWE-bench does, and SWE-bench's predictions file.

`grade(instance, model_patch)`:

1. makes a fresh workspace at base_commit (never the one the agent used, so
   nothing but the patch carries over);
2. applies the model patch (``git apply``, then ``patch --fuzz=5``); a patch
   that does not apply ends grading: not resolved, status ``patch_failed``;
3. resets the test infrastructure the patch changed to base_commit (see
   below), then the files the test patch touches, and applies the test patch
   (the agent may have edited those tests; the instance's tests decide);
4. runs pytest once on the test files named by FAIL_TO_PASS and PASS_TO_PASS,
   with ``-rA`` so that every test's outcome is printed in pytest's short
   summary, and reads each test id's status from there;
5. resolved = every FAIL_TO_PASS and every PASS_TO_PASS test passed. As in
   SWE-bench, PASSED and XFAIL count as passing; FAILED, ERROR, SKIPPED, XPASS
   and a test that does not appear at all (MISSING) do not.

A verdict needs an environment that can run the tests at all. Two checks keep
a broken environment from passing for a bad patch (status ``env_error``, score
unknown, never ``unresolved``):

* the test runner must start: no Python, or "No module named pytest", is an
  environment error, not failing tests;
* before a patch is called unresolved because PASS_TO_PASS tests fail, they
  are run at base_commit with the test patch but without the model patch
  (SWE-bench's validation: those tests pass there by definition). When they
  fail there too, the repository's dependencies are missing or broken, and
  that is what the verdict says. This depends only on the instance and the
  environment, so it runs once per instance per process (`base_check` caches
  it). When every PASS_TO_PASS test passed with the patch, the environment
  evidently runs them, and no check is needed.

Grading cannot be gamed through the test runner. A patch that adds a
``conftest.py`` forcing every outcome to "passed" fixes nothing, so before the
graded tests run, whatever the model patch changed outside the test patch
that steers pytest rather than the code under test is put back as it was at
base_commit (a new file is removed): every ``conftest.py``; ``pytest.ini`` and
``.pytest.ini``; ``pyproject.toml``, ``setup.cfg`` and ``tox.ini`` when their
pytest settings changed (other changes to them stay); ``sitecustomize.py``,
``usercustomize.py`` and ``*.pth`` files; the test files the graded test ids
name; new ``*.dist-info``/``*.egg-info`` metadata (pytest plugins register
through entry points); and new top-level modules that would shadow pytest, its
dependencies or the standard library (``python -m pytest`` puts the checkout
first on ``sys.path``). The grade's `restored` and reason say what was reset;
the model patch itself (``preds.jsonl``) stays the agent's full diff. The
environment of the test run is the harness's (`PYTEST_ADDOPTS`,
``PYTHONPATH`` and the like cannot come from the patch), and the test run has
the same resource limits as agent commands. What no file rule can catch is a
change to the code under test that tampers with pytest when imported; the
official harness has the same blind spot.

Locally the tests run with the harness's own interpreter (`sys.executable`,
which has pytest: it is a dependency of ampbench); in Docker with the image's
``python``.

Test ids are pytest node ids (``tests/test_x.py::TestY::test_z[param]``), as in
the SWE-bench datasets for pytest-based repositories. Repositories with their
own runners (Django's runtests.py, SymPy's bin/test) need the official
harness: export ``preds.jsonl`` with `write_predictions` and run
``python -m swebench.harness.run_evaluation --predictions_path preds.jsonl``.
"""

from __future__ import annotations

import configparser
import contextlib
import functools
import hashlib
import json
import os
import posixpath
import re
import shlex
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import AmpbenchError, UserError
from suites.swe.instances import Instance
from suites.swe.official import SpecError, official_tests
from suites.swe.workspace import PatchError, TaskWorkspace, Workspace, WorkspaceError, patch_paths

PASSING = frozenset({"PASSED", "XFAIL"})
PYTEST_STATUSES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
# When a test shows up twice (passed, then errored in teardown) the worse outcome counts.
_SEVERITY = {"ERROR": 5, "FAILED": 4, "XPASS": 3, "SKIPPED": 2, "XFAIL": 1, "PASSED": 0}

DEFAULT_GRADE_TIMEOUT_S = 600.0
GRADE_OUTPUT_BYTES = 16 << 20
PREDICTION_FIELDS = ("instance_id", "model_name_or_path", "model_patch")

WorkspaceFactory = Callable[[Instance], AbstractContextManager[TaskWorkspace]]


ENV_ERROR = "env_error"
# Verdicts that the same patch on the same instance gets again: a timeout or an error may
# not (a loaded machine, a workspace that could not be made).
SHAREABLE = frozenset({"resolved", "unresolved", "patch_failed", "test_patch_failed", ENV_ERROR})
GRADE_STATUSES = (
    "resolved",
    "unresolved",
    ENV_ERROR,
    "patch_failed",
    "test_patch_failed",
    "timeout",
    "error",
)
# Options of Workspace.create that change how tests run (not merely where the checkout comes from).
_ENV_OPTIONS = ("guard", "extra_env", "timeout_s", "max_output_bytes", "limits", "command_network")


class CancellableWorkspaces:
    """A workspace factory whose live workspaces `cancel` kills and removes at once."""

    def __init__(self, factory: WorkspaceFactory) -> None:
        self.factory = factory
        # The same test environment as the wrapped factory (grading.base_check's cache key).
        self.env_key = getattr(factory, "env_key", factory)
        self._lock = threading.Lock()
        self._live: set[Any] = set()
        self._cancelled = False

    def __call__(self, instance: Instance) -> AbstractContextManager[TaskWorkspace]:
        return self._open(instance)

    @contextlib.contextmanager
    def _open(self, instance: Instance) -> Iterator[TaskWorkspace]:
        if self._cancelled:
            raise WorkspaceError("grading was cancelled")
        manager = self.factory(instance)
        with manager as workspace:
            with self._lock:
                self._live.add(workspace)
                cancelled = self._cancelled
            try:
                if cancelled:
                    raise WorkspaceError("grading was cancelled")
                yield workspace
            finally:
                with self._lock:
                    self._live.discard(workspace)

    def cancel(self) -> None:
        """Kill the test runs in flight and remove their workspaces; refuse new ones."""
        with self._lock:
            self._cancelled = True
            live = list(self._live)
        for workspace in live:
            abort = getattr(workspace, "abort", None)
            if abort is not None:
                with contextlib.suppress(Exception):
                    abort()
        for workspace in live:
            with contextlib.suppress(Exception):
                workspace.close()


def local_workspaces(**options: Any) -> WorkspaceFactory:
    """A factory of local workspaces; `options` go to `Workspace.create` (repo_mirror, guard, ...).

    Its `env_key` names the test environment it makes, so that factories with the same
    settings share the base-commit check (`base_check`) and verdicts (`grade_key`)."""

    def factory(instance: Instance) -> AbstractContextManager[TaskWorkspace]:
        return Workspace.create(instance, **options)

    factory.env_key = ("local", repr(sorted((k, options[k]) for k in _ENV_OPTIONS if k in options)))  # type: ignore[attr-defined]
    return factory


def default_python(workspace: TaskWorkspace) -> str:
    """The interpreter that runs the tests in `workspace`: its own `python` attribute
    (the harness's interpreter locally, ``python`` in a SWE-bench image), else ``python``."""
    return str(getattr(workspace, "python", None) or "python")


# --------------------------------------------------------------------------- pytest output


def pytest_command(test_ids: Iterable[str], *, python: str = "python") -> str:
    """The shell command that runs the files of `test_ids` with a per-test summary."""
    files = sorted({tid.split("::", 1)[0] for tid in test_ids if tid.strip()})
    args = [python, "-m", "pytest", "-rA", "--tb=short", "--color=no", "-p", "no:cacheprovider", *files]
    return shlex.join(args)


def parse_pytest_summary(output: str, test_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Per-test status from the short test summary that ``pytest -rA`` prints.

    Lines look like ``PASSED tests/t.py::test_a`` or ``FAILED tests/t.py::test_b
    - AssertionError: ...``. When `test_ids` is given, a line is matched to the
    id it starts with (ids may themselves contain ' - ' in their parameters);
    otherwise the id ends at the first ' - '.
    """
    known = set(test_ids) if test_ids is not None else None
    results: dict[str, str] = {}
    for raw in output.splitlines():
        line = raw.rstrip()
        status = next((s for s in PYTEST_STATUSES if line.startswith(s + " ")), None)
        if status is None:
            continue
        rest = line[len(status) + 1 :].strip()
        node = _match_node(rest, known)
        if node is None:
            continue
        previous = results.get(node)
        if previous is None or _SEVERITY[status] > _SEVERITY[previous]:
            results[node] = status
    return results


def _match_node(rest: str, known: set[str] | None) -> str | None:
    if known is None:
        return rest.split(" - ", 1)[0] or None
    if rest in known:
        return rest
    start = 0
    while (cut := rest.find(" - ", start)) != -1:
        if rest[:cut] in known:
            return rest[:cut]
        start = cut + 1
    return None


@dataclass
class TestRun:
    """One pytest run during grading."""

    statuses: dict[str, str]
    """Status of every requested test id; MISSING when pytest did not report it."""
    output: str
    returncode: int | None
    timed_out: bool
    duration_s: float
    exception: str | None = None
    """Why the test command could not start at all (then returncode is None)."""


def run_tests(
    workspace: TaskWorkspace,
    test_ids: Sequence[str],
    *,
    timeout_s: float = DEFAULT_GRADE_TIMEOUT_S,
    python: str | None = None,
    instance: Instance | None = None,
) -> TestRun:
    """Run the tests of `test_ids` in `workspace` and report each id's status.

    A real SWE-bench instance runs the official harness's test command and is read by
    its log parser (`suites.swe.official`); the bundled mini suite runs pytest on the
    test files of `test_ids` and is read by `parse_pytest_summary`.
    """
    if not test_ids:
        return TestRun({}, "", 0, False, 0.0)
    official = official_tests(instance) if instance is not None else None
    if official is not None:
        command, parse = official
        result = workspace.run(command, timeout_s=timeout_s, max_output_bytes=GRADE_OUTPUT_BYTES)
        found = parse(result["output"])
    else:
        python = python or default_python(workspace)
        result = workspace.run(
            pytest_command(test_ids, python=python), timeout_s=timeout_s, max_output_bytes=GRADE_OUTPUT_BYTES
        )
        found = parse_pytest_summary(result["output"], test_ids)
    statuses = {tid: found.get(tid, "MISSING") for tid in test_ids}
    return TestRun(
        statuses,
        result["output"],
        result["returncode"],
        result["timed_out"],
        result["duration_s"],
        result.get("exception"),
    )


_NO_PYTEST = re.compile(r"No module named '?pytest'?(?![\w.])")


def _last_lines(text: str, lines: int = 3, limit: int = 400) -> str:
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= limit else "..." + joined[-limit:]


def runner_problem(run: TestRun, python: str) -> str | None:
    """Why the test runner itself did not run (no interpreter, no pytest), or None.

    Only when no requested test reported a status: a test's own output may well
    mention a missing module.
    """
    if any(status != "MISSING" for status in run.statuses.values()):
        return None
    if run.exception:
        return f"the test command could not start: {run.exception}"
    if _NO_PYTEST.search(run.output):
        return f"the test runner is missing: {python} has no pytest ({_last_lines(run.output, 1)})"
    if run.returncode in (126, 127):
        return f"the test runner cannot start ({python}): {_last_lines(run.output, 2)}"
    return None


# --------------------------------------------------------------------------- test infrastructure

PYTEST_INI_NAMES = ("pytest.ini", ".pytest.ini")
STARTUP_FILES = ("sitecustomize.py", "usercustomize.py")
# Files that hold pytest settings in one section among others: only a change there counts.
_SETTINGS_SECTIONS = {"setup.cfg": ("tool:pytest",), "tox.ini": ("pytest",)}
_MODULE_SUFFIXES = (".py", ".pyc", ".pyw", ".so", ".pyd")
_UNREADABLE = object()


def _pytest_settings(name: str, text: str | None) -> object:
    """The pytest settings a pyproject.toml / setup.cfg / tox.ini holds (None: none)."""
    if text is None:
        return None
    if name == "pyproject.toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return _UNREADABLE
        tool = data.get("tool")
        return tool.get("pytest") if isinstance(tool, dict) else None
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return _UNREADABLE
    found = {sec: dict(parser.items(sec)) for sec in _SETTINGS_SECTIONS[name] if parser.has_section(sec)}
    return found or None


@functools.cache
def shadowed_modules() -> frozenset[str]:
    """Top-level module names a new module at the checkout's top would shadow for pytest: the
    standard library, pytest and its dependencies, Python's start-up hooks."""
    from importlib import metadata

    names = set(sys.stdlib_module_names)
    names |= {"pytest", "_pytest", "py", "pluggy", "iniconfig", "packaging", "exceptiongroup", "tomli"}
    names |= {"colorama", "sitecustomize", "usercustomize", "conftest"}
    try:
        requirements = metadata.requires("pytest") or []
    except metadata.PackageNotFoundError:
        requirements = []
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
        if match:
            names.add(match.group(0).lower().replace("-", "_").replace(".", "_"))
    return frozenset(names)


def _changed_paths(patch: str) -> list[str]:
    """Every path a git diff touches: its ---/+++ names, and the names of `diff --git` headers
    (an empty new file or a binary one has no ---/+++ lines)."""
    paths = patch_paths(patch)
    for line in patch.splitlines():
        if not line.startswith("diff --git "):
            continue
        rest = line[len("diff --git ") :]
        half = (len(rest) - 5) // 2
        if rest.startswith('"'):
            parts = rest.split('" "', 1)
            name = parts[1].rstrip('"') if len(parts) == 2 else ""
            name = _unquote(f'"{name}"')[2:] if name.startswith("b/") else ""
        elif rest[:2] == "a/" and rest == f"a/{rest[2 : 2 + half]} b/{rest[2 : 2 + half]}":
            name = rest[2 : 2 + half]
        else:
            name = ""
        if name and name not in paths:
            paths.append(name)
    return paths


def _unquote(path: str) -> str:
    raw = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return raw.encode("latin-1").decode("utf-8", "replace")


def infrastructure_changes(
    workspace: TaskWorkspace, instance: Instance, model_patch: str
) -> list[tuple[str, str, bool]]:
    """(path, what it is, existed at base_commit) for each change of `model_patch` (applied in
    `workspace`) to test infrastructure outside the instance's test patch (see the module doc)."""
    changed = [p for p in _changed_paths(model_patch) if p not in set(patch_paths(instance.test_patch))]
    if not changed:
        return []
    graded = {tid.split("::", 1)[0] for tid in instance.test_ids}
    tops = {p.split("/", 1)[0] for p in changed}
    at_base = workspace.base_entries([*changed, *tops])
    found = []
    for path in changed:
        name = posixpath.basename(path)
        top = path.split("/", 1)[0]
        existed = path in at_base
        module = top.split(".", 1)[0]
        what = None
        if name == "conftest.py":
            what = "conftest"
        elif name in PYTEST_INI_NAMES:
            what = "pytest configuration"
        elif name in STARTUP_FILES or name.endswith(".pth"):
            what = "Python start-up file"
        elif path in graded:
            what = "graded test file"
        elif name == "pyproject.toml" or name in _SETTINGS_SECTIONS:
            before = _pytest_settings(name, workspace.base_text(path) if existed else None)
            try:
                after = _pytest_settings(name, workspace.read_text(path))
            except AmpbenchError:
                after = None  # deleted
            if before != after:
                what = "pytest settings"
        elif not existed and any(part.endswith((".dist-info", ".egg-info")) for part in path.split("/")[:-1]):
            what = "package metadata"
        elif (
            top not in at_base
            and module in shadowed_modules()
            and (("/" in path and "." not in top) or ("/" not in path and top.endswith(_MODULE_SUFFIXES)))
        ):
            what = f"shadows the module {module}"
        if what is not None:
            found.append((path, what, existed))
    return found


def restore_test_infrastructure(workspace: TaskWorkspace, instance: Instance, model_patch: str) -> list[str]:
    """Reset what `infrastructure_changes` finds to base_commit (a new file is removed);
    returns one entry per file, e.g. 'removed conftest.py (conftest)'."""
    changes = infrastructure_changes(workspace, instance, model_patch)
    if changes:
        workspace.checkout_base([path for path, _, _ in changes])
    return [f"{'restored' if existed else 'removed'} {path} ({what})" for path, what, existed in changes]


def _restored_reason(restored: Sequence[str]) -> str:
    shown = ", ".join(restored[:5]) + (f" and {len(restored) - 5} more" if len(restored) > 5 else "")
    return f"test infrastructure reset to base_commit: {shown}"


# --------------------------------------------------------------------------- grading


@dataclass
class GradeResult:
    """SWE-bench's verdict on one model patch."""

    instance_id: str
    resolved: bool
    status: str
    """resolved | unresolved | env_error | patch_failed | test_patch_failed | timeout | error.
    env_error: the environment cannot run the tests (no test runner, or PASS_TO_PASS fail at
    base_commit without the model patch): the patch's verdict is unknown."""
    reason: str = ""
    """Why it is not resolved, in one line; when test infrastructure was reset, that too
    (empty when resolved and nothing was reset)."""
    patch_applied: bool = False
    patch_method: str = ""
    """'git apply', 'patch --fuzz=5', or 'empty' for an empty model patch."""
    fail_to_pass: dict[str, str] = field(default_factory=dict)
    pass_to_pass: dict[str, str] = field(default_factory=dict)
    timed_out: bool = False
    test_returncode: int | None = None
    duration_s: float = 0.0
    test_output: str = ""
    """The tail of pytest's output (for debugging a verdict)."""
    base_pass_to_pass: dict[str, str] = field(default_factory=dict)
    """PASS_TO_PASS statuses at base_commit without the model patch (empty when not checked:
    the verdict is resolved, or every PASS_TO_PASS test passed with the patch)."""
    restored: list[str] = field(default_factory=list)
    """Test infrastructure the model patch changed, reset to base_commit before the tests ran
    ('removed conftest.py (conftest)', 'restored pyproject.toml (pytest settings)'); also
    said in `reason`, even when resolved."""

    @property
    def fail_to_pass_passed(self) -> int:
        return sum(status in PASSING for status in self.fail_to_pass.values())

    @property
    def pass_to_pass_passed(self) -> int:
        return sum(status in PASSING for status in self.pass_to_pass.values())

    def to_row(self) -> dict[str, Any]:
        """Columns for tasks.csv."""
        return {
            "resolved": self.resolved,
            "grade_status": self.status,
            "fail_to_pass": f"{self.fail_to_pass_passed}/{len(self.fail_to_pass)}",
            "pass_to_pass": f"{self.pass_to_pass_passed}/{len(self.pass_to_pass)}",
            "grade_reason": self.reason,
        }

    def to_report(self) -> dict[str, Any]:
        """The per-instance shape of SWE-bench's report.json."""

        def split(statuses: Mapping[str, str]) -> dict[str, list[str]]:
            return {
                "success": [t for t, s in statuses.items() if s in PASSING],
                "failure": [t for t, s in statuses.items() if s not in PASSING],
            }

        return {
            self.instance_id: {
                "patch_is_None": False,
                "patch_exists": self.patch_method != "empty",
                "patch_successfully_applied": self.patch_applied,
                "resolved": self.resolved,
                "tests_status": {
                    "FAIL_TO_PASS": split(self.fail_to_pass),
                    "PASS_TO_PASS": split(self.pass_to_pass),
                },
            }
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tail(text: str, limit: int = 20_000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


# --------------------------------------------------------------------------- the base-commit check


@dataclass(frozen=True)
class BaseCheck:
    """PASS_TO_PASS at base_commit with the test patch applied and no model patch."""

    instance_id: str
    statuses: dict[str, str]
    problem: str
    """Empty when every PASS_TO_PASS test passes; else why the environment cannot run them."""
    output: str = ""
    """The tail of pytest's output."""


_BASE_CHECKS: dict[Hashable, BaseCheck] = {}
_BASE_LOCKS: dict[Hashable, threading.Lock] = {}
_BASE_LOCKS_GUARD = threading.Lock()


def _base_key(instance: Instance, factory: WorkspaceFactory, python: str, timeout_s: float) -> Hashable:
    digest = hashlib.sha256(instance.test_patch.encode("utf-8")).hexdigest()
    env_key = getattr(factory, "env_key", factory)
    return (
        instance.instance_id,
        instance.base_commit,
        digest,
        tuple(instance.pass_to_pass),
        env_key,
        python,
        timeout_s,
    )


def grade_key(instance: Instance, patch: str, factory: WorkspaceFactory, timeout_s: float) -> Hashable:
    """What decides `grade`'s verdict: the whole instance (base, tests, test patch, spec), the
    patch, the test environment and the time limit; graders that share verdicts key them by it."""
    return (
        getattr(factory, "env_key", factory),
        timeout_s,
        hashlib.sha256(repr(instance).encode("utf-8")).hexdigest(),
        hashlib.sha256(patch.encode("utf-8")).hexdigest(),
    )


def base_check(
    instance: Instance,
    workspace_factory: WorkspaceFactory | None = None,
    *,
    python: str | None = None,
    timeout_s: float = DEFAULT_GRADE_TIMEOUT_S,
) -> BaseCheck:
    """Run PASS_TO_PASS at base_commit with the test patch but without a model patch, once per
    instance, environment and process (concurrent graders of one instance wait for one run).

    Raises like `grade`'s workspace (AmpbenchError, OSError); a failure is not cached.
    """
    factory = workspace_factory or local_workspaces()
    key = _base_key(instance, factory, python or "", timeout_s)
    with _BASE_LOCKS_GUARD:
        lock = _BASE_LOCKS.setdefault(key, threading.Lock())
    with lock:
        cached = _BASE_CHECKS.get(key)
        if cached is not None:
            return cached
        check = _run_base_check(instance, factory, python=python, timeout_s=timeout_s)
        _BASE_CHECKS[key] = check
        return check


def _run_base_check(
    instance: Instance, factory: WorkspaceFactory, *, python: str | None, timeout_s: float
) -> BaseCheck:
    tests = list(instance.pass_to_pass)
    if not tests:
        return BaseCheck(instance.instance_id, {}, "")
    with factory(instance) as ws:
        try:
            ws.checkout_base(patch_paths(instance.test_patch))
            ws.apply(instance.test_patch)
        except PatchError as exc:
            return BaseCheck(instance.instance_id, {}, f"test patch does not apply at base_commit: {exc}")
        python = python or default_python(ws)
        run = run_tests(ws, tests, timeout_s=timeout_s, python=python, instance=instance)
    output = _tail(run.output)
    problem = runner_problem(run, python)
    if problem is None and run.timed_out:
        problem = (
            f"PASS_TO_PASS tests time out at base_commit without the model patch (after {timeout_s:g} s): "
            "this environment cannot run the instance's tests"
        )
    if problem is None:
        failing = [t for t in tests if run.statuses[t] not in PASSING]
        if failing:
            shown = ", ".join(f"{t} {run.statuses[t]}" for t in failing[:3])
            more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
            problem = (
                f"PASS_TO_PASS tests fail at base_commit without the model patch, so this environment "
                f"cannot run the instance's tests (missing or broken dependencies?): {len(failing)}/"
                f"{len(tests)} ({shown}{more}); output ends: {_last_lines(run.output)}"
            )
    return BaseCheck(instance.instance_id, dict(run.statuses), problem or "", output)


def grade(
    instance: Instance,
    model_patch: str | None,
    workspace_factory: WorkspaceFactory | None = None,
    *,
    timeout_s: float = DEFAULT_GRADE_TIMEOUT_S,
    python: str | None = None,
) -> GradeResult:
    """Grade `model_patch` on `instance` (see the module doc). Never raises for a
    bad patch or failing tests: those are results. A workspace that cannot be
    made (repo not found, Docker missing) gives status 'error' with the reason;
    an environment that cannot run the tests gives 'env_error'. `python` runs
    pytest (default: the workspace's, see `default_python`)."""
    factory = workspace_factory or local_workspaces()
    started = time.monotonic()
    patch = model_patch or ""
    result = GradeResult(instance.instance_id, resolved=False, status="error")

    def done() -> GradeResult:
        result.duration_s = round(time.monotonic() - started, 3)
        return result

    try:
        with factory(instance) as ws:
            try:
                result.patch_method = ws.apply(patch)
                result.patch_applied = True
            except PatchError as exc:
                result.status, result.reason = "patch_failed", f"model patch does not apply: {exc}"
                return done()
            result.restored = restore_test_infrastructure(ws, instance, patch)
            try:
                ws.checkout_base(patch_paths(instance.test_patch))
                ws.apply(instance.test_patch)
            except PatchError as exc:
                result.status, result.reason = "test_patch_failed", f"test patch does not apply: {exc}"
                return done()
            python = python or default_python(ws)
            run = run_tests(ws, instance.test_ids, timeout_s=timeout_s, python=python, instance=instance)
    except (AmpbenchError, OSError) as exc:
        # No environment for the instance (no spec, an image that cannot be built) is the
        # environment's failure, not the patch's.
        result.status, result.reason = (
            ENV_ERROR if isinstance(exc, SpecError) else "error",
            f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc),
        )
        return done()

    result.fail_to_pass = {t: run.statuses[t] for t in instance.fail_to_pass}
    result.pass_to_pass = {t: run.statuses[t] for t in instance.pass_to_pass}
    result.timed_out = run.timed_out
    result.test_returncode = run.returncode
    result.test_output = _tail(run.output)
    problem = runner_problem(run, python)
    if problem is not None:
        result.status, result.reason = ENV_ERROR, problem
        return done()
    failing_f2p = [t for t, s in result.fail_to_pass.items() if s not in PASSING]
    failing_p2p = [t for t, s in result.pass_to_pass.items() if s not in PASSING]
    result.resolved = not failing_f2p and not failing_p2p and not run.timed_out
    if result.resolved:
        result.status = "resolved"
        if result.restored:
            result.reason = _restored_reason(result.restored)
    elif run.timed_out:
        result.status, result.reason = "timeout", f"tests timed out after {timeout_s:g} s"
        if result.restored:
            result.reason += "; " + _restored_reason(result.restored)
    else:
        # Failing PASS_TO_PASS tests are the patch's fault only if they pass without it.
        if failing_p2p:
            try:
                base = base_check(instance, factory, python=python, timeout_s=timeout_s)
            except (AmpbenchError, OSError) as exc:
                result.status = ENV_ERROR if isinstance(exc, SpecError) else "error"
                result.reason = "base_commit check: " + (
                    f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
                )
                return done()
            result.base_pass_to_pass = dict(base.statuses)
            if base.problem:
                result.status, result.reason = ENV_ERROR, base.problem
                return done()
        result.status = "unresolved"
        parts = []
        if failing_f2p:
            parts.append(
                f"FAIL_TO_PASS failing: {len(failing_f2p)}/{len(result.fail_to_pass)} ({failing_f2p[0]} ...)"
            )
        if failing_p2p:
            parts.append(
                f"PASS_TO_PASS failing: {len(failing_p2p)}/{len(result.pass_to_pass)} ({failing_p2p[0]} ...)"
            )
        if result.patch_method == "empty":
            parts.insert(0, "empty patch")
        if result.restored:
            parts.append(_restored_reason(result.restored))
        result.reason = "; ".join(parts)
    return done()


# --------------------------------------------------------------------------- predictions


def write_predictions(
    path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]], *, append: bool = False
) -> int:
    """Write SWE-bench predictions (JSONL: instance_id, model_name_or_path, model_patch).

    Other keys of a row are dropped; a missing key is a ValueError. With
    `append`, rows are added to an existing file (for resumed runs). Returns
    the number of rows written.
    """
    lines = []
    for row in rows:
        missing = [k for k in PREDICTION_FIELDS if k not in row]
        if missing:
            raise ValueError(f"prediction row lacks {', '.join(missing)}: {dict(row)!r:.200}")
        record = {k: ("" if row[k] is None and k == "model_patch" else row[k]) for k in PREDICTION_FIELDS}
        lines.append(json.dumps(record, ensure_ascii=False))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a" if append else "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
            fh.flush()
    return len(lines)


def read_predictions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read predictions in any form SWE-bench accepts: JSONL, a JSON list, or a JSON
    object keyed by instance_id."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"predictions file {os.fspath(path)!r} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows: list[Any]
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{p}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        rows = list(data.values()) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise UserError(f"{p}: expected a JSON list of predictions, or an object keyed by instance_id")
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{p}:{lineno}: invalid JSON ({exc.msg})") from None
    for index, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or any(k not in row for k in ("instance_id", "model_patch")):
            raise UserError(f"{p}: prediction {index} needs instance_id and model_patch")
    return rows


__all__ = [
    "ENV_ERROR",
    "GRADE_STATUSES",
    "PASSING",
    "BaseCheck",
    "CancellableWorkspaces",
    "GradeResult",
    "TestRun",
    "WorkspaceError",
    "base_check",
    "default_python",
    "grade",
    "infrastructure_changes",
    "local_workspaces",
    "parse_pytest_summary",
    "pytest_command",
    "read_predictions",
    "restore_test_infrastructure",
    "run_tests",
    "runner_problem",
    "shadowed_modules",
    "write_predictions",
]
