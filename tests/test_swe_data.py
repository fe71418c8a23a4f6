"""The bundled mini suite, its generated instances.jsonl, grading, and the instance loader."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.errors import UserError
from suites.swe import build_instances, grading
from suites.swe.grading import (
    GradeResult,
    default_python,
    grade,
    local_workspaces,
    parse_pytest_summary,
    pytest_command,
    read_predictions,
    write_predictions,
)
from suites.swe.instances import (
    BUNDLED_JSONL,
    PROJECTS_DIR,
    Instance,
    bundled_instances,
    load_instances,
    parse_shard,
    read_instances,
    select,
    write_instances,
)
from suites.swe.workspace import (
    Workspace,
    build_repo_from_tree,
    bundled_commit_message,
    commit_date,
    patch_paths,
)
from tests.conftest import FORCING_CONFTEST

BUNDLED = bundled_instances()
IDS = [inst.instance_id for inst in BUNDLED]
OBVIOUS = [inst for inst in BUNDLED if (PROJECTS_DIR / inst.instance_id / "obvious.patch").is_file()]


@pytest.fixture(scope="module")
def grades() -> dict[tuple[str, str], GradeResult]:
    """Gold, empty and obvious patches of every bundled instance, graded two at a time
    (the machine has 2 cores; each grade is one pytest run of ~0.5 s)."""
    jobs = [(inst, "gold", inst.patch) for inst in BUNDLED]
    jobs += [(inst, "empty", "") for inst in BUNDLED]
    jobs += [
        (inst, "obvious", (PROJECTS_DIR / inst.instance_id / "obvious.patch").read_text()) for inst in OBVIOUS
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: grade(job[0], job[2]), jobs))
    return {(inst.instance_id, kind): result for (inst, kind, _), result in zip(jobs, results, strict=True)}


# --------------------------------------------------------------------------- the suite's shape


def test_the_mini_suite_has_at_least_ten_varied_instances() -> None:
    assert len(BUNDLED) >= 10
    assert len({inst.repo for inst in BUNDLED}) >= 10
    multi_file = [inst.instance_id for inst in BUNDLED if len(patch_paths(inst.patch)) >= 2]
    assert len(multi_file) >= 2, multi_file
    one_line = [
        inst.instance_id
        for inst in BUNDLED
        if sum(line.startswith("+") and not line.startswith("+++") for line in inst.patch.splitlines()) == 1
    ]
    assert len(one_line) >= 3, one_line
    assert OBVIOUS, "one instance must ship an obvious.patch"


@pytest.mark.parametrize("instance", BUNDLED, ids=IDS)
def test_instance_fields_follow_the_swe_bench_schema(instance: Instance) -> None:
    assert instance.instance_id.startswith("ampbench__")
    assert instance.repo == "ampbench/" + instance.instance_id.removeprefix("ampbench__").rsplit("-", 1)[0]
    assert len(instance.base_commit) == 40
    assert instance.environment_setup_commit == instance.base_commit
    assert instance.fail_to_pass and instance.pass_to_pass
    assert not set(instance.fail_to_pass) & set(instance.pass_to_pass)
    # The tests that decide the instance live in the test patch, the fix in the gold patch.
    assert all(path.startswith("tests/") for path in patch_paths(instance.test_patch))
    assert not any(path.startswith("tests/") for path in patch_paths(instance.patch))
    assert instance.problem_statement.strip() and instance.created_at.endswith("Z")


@pytest.mark.parametrize("instance", BUNDLED, ids=IDS)
def test_projects_are_tiny(instance: Instance) -> None:
    files = list((PROJECTS_DIR / instance.instance_id / "repo").rglob("*.py"))
    assert sum(len(f.read_text().splitlines()) for f in files) < 300


# --------------------------------------------------------------------------- gold / empty / obvious


@pytest.mark.parametrize("instance_id", IDS)
def test_gold_patch_resolves(grades: dict[tuple[str, str], GradeResult], instance_id: str) -> None:
    result = grades[(instance_id, "gold")]
    assert result.resolved, (result.status, result.reason, result.test_output[-2000:])
    assert result.patch_method == "git apply"
    assert set(result.fail_to_pass.values()) == {"PASSED"}
    assert set(result.pass_to_pass.values()) == {"PASSED"}


@pytest.mark.parametrize("instance_id", IDS)
def test_empty_patch_resolves_nothing(grades: dict[tuple[str, str], GradeResult], instance_id: str) -> None:
    result = grades[(instance_id, "empty")]
    assert not result.resolved
    assert result.status == "unresolved" and result.patch_method == "empty"
    # PASS_TO_PASS passed: the environment runs the tests, no base_commit check was needed.
    assert result.base_pass_to_pass == {}
    # Every FAIL_TO_PASS test really fails before the fix, and the rest already passes.
    assert "PASSED" not in result.fail_to_pass.values(), result.fail_to_pass
    assert set(result.pass_to_pass.values()) == {"PASSED"}


@pytest.mark.parametrize("instance", OBVIOUS, ids=[i.instance_id for i in OBVIOUS])
def test_obvious_fix_breaks_a_pass_to_pass_test(
    grades: dict[tuple[str, str], GradeResult], instance: Instance
) -> None:
    result = grades[(instance.instance_id, "obvious")]
    assert not result.resolved
    # It does fix the reported bug...
    assert set(result.fail_to_pass.values()) == {"PASSED"}
    # ...but breaks behaviour that the existing tests pin down.
    assert "FAILED" in result.pass_to_pass.values()
    assert "PASS_TO_PASS failing" in result.reason
    # ...which pass without the patch: the patch broke them, not the environment.
    assert result.status == "unresolved"
    assert set(result.base_pass_to_pass.values()) == {"PASSED"}


def test_a_patch_that_does_not_apply_is_not_resolved() -> None:
    instance = BUNDLED[0]
    bad = "diff --git a/nope.py b/nope.py\n--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-x\n+y\n"
    result = grade(instance, bad)
    assert result.status == "patch_failed" and not result.resolved and not result.patch_applied
    assert result.reason.startswith("model patch does not apply: ")
    assert "nope.py" in result.reason


def test_a_patch_with_wrong_line_numbers_applies_with_fuzz() -> None:
    instance = next(inst for inst in BUNDLED if inst.instance_id == "ampbench__lrukit-1")
    shifted = instance.patch.replace("@@ -35,6 +35,7 @@", "@@ -31,6 +31,7 @@")
    assert shifted != instance.patch
    result = grade(instance, shifted)
    assert result.resolved, result.reason
    assert result.patch_method in ("git apply", "patch --fuzz=5")


def test_grading_a_missing_repo_is_an_error_result() -> None:
    ghost = Instance(
        instance_id="nobody__ghost-1",
        repo="nobody/ghost",
        base_commit="0" * 40,
        problem_statement="x",
        test_patch="",
        fail_to_pass=("tests/test_a.py::test_a",),
    )
    result = grade(ghost, "", local_workspaces(network=False))
    assert result.status == "error" and not result.resolved
    assert "nobody/ghost" in result.reason and "--repo-mirror" in result.reason


# --------------------------------------------------------------------------- instances.jsonl


# --------------------------------------------------------------------------- environment errors

LRUKIT = next(inst for inst in BUNDLED if inst.instance_id == "ampbench__lrukit-1")
# A test patch whose conftest imports a dependency this environment lacks: every test of
# the instance errors, with or without any patch (like a SWE-bench repo whose deps are missing).
MISSING_DEPENDENCY = (
    "diff --git a/tests/conftest.py b/tests/conftest.py\nnew file mode 100644\n--- /dev/null\n"
    "+++ b/tests/conftest.py\n@@ -0,0 +1 @@\n+import ampbench_missing_dependency_zz\n"
)


def test_a_missing_test_runner_is_an_env_error(tmp_path: Path) -> None:
    # A plain interpreter without pytest (what a venv without ampbench's dev extras was).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    bare = str(tmp_path / "bare" / "bin" / "python")
    result = grade(LRUKIT, LRUKIT.patch, python=bare)
    assert result.status == "env_error" and not result.resolved
    assert result.reason.startswith(f"the test runner is missing: {bare} has no pytest")
    assert "No module named pytest" in result.reason
    # No interpreter at all is the same kind of error.
    result = grade(LRUKIT, "", python=str(tmp_path / "no-such-python"))
    assert result.status == "env_error" and "the test runner cannot start" in result.reason


def test_grading_uses_the_harness_interpreter_whatever_python_is_on_path(tmp_path: Path) -> None:
    # The grader's pytest is ampbench's own dependency, run with the harness's interpreter
    # (sys.executable), not whichever `python` comes first on the command's PATH.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\necho 'python: No module named pytest' >&2\nexit 1\n")
    (fake / "python").chmod(0o755)
    factory = local_workspaces(extra_env={"PATH": f"{fake}:/usr/bin:/bin"})
    result = grade(LRUKIT, LRUKIT.patch, factory)
    assert result.status == "resolved", (result.reason, result.test_output[-1000:])
    with Workspace.create(LRUKIT, base_dir=tmp_path) as ws:
        assert default_python(ws) == sys.executable


def test_pass_to_pass_failing_at_base_is_an_env_error() -> None:
    broken = dataclasses.replace(LRUKIT, test_patch=LRUKIT.test_patch + MISSING_DEPENDENCY)
    for patch in (broken.patch, ""):  # the gold patch and the empty one: neither is gradable here
        result = grade(broken, patch)
        assert result.status == "env_error" and not result.resolved, result.reason
        assert result.reason.startswith("PASS_TO_PASS tests fail at base_commit without the model patch")
        assert f"{len(broken.pass_to_pass)}/{len(broken.pass_to_pass)}" in result.reason
        assert "No module named 'ampbench_missing_dependency_zz'" in result.reason
        assert set(result.base_pass_to_pass.values()) == {"MISSING"}


@pytest.mark.parametrize("instance", OBVIOUS[:1], ids=[i.instance_id for i in OBVIOUS[:1]])
def test_the_base_commit_check_runs_once_per_instance(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = grading._run_base_check

    def counting(inst, *args, **kwargs):
        calls.append(inst.instance_id)
        return real(inst, *args, **kwargs)

    monkeypatch.setattr(grading, "_BASE_CHECKS", {})
    monkeypatch.setattr(grading, "_run_base_check", counting)
    # Resolved, or PASS_TO_PASS passing: the environment evidently runs the tests.
    assert grade(instance, instance.patch).status == "resolved"
    assert grade(instance, "").status == "unresolved"
    assert calls == []
    # A patch that breaks PASS_TO_PASS: checked at base_commit once, even graded at once.
    obvious = (PROJECTS_DIR / instance.instance_id / "obvious.patch").read_text()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda patch: grade(instance, patch), [obvious] * 3))
    assert [r.status for r in results] == ["unresolved"] * 3
    assert calls == [instance.instance_id]
    assert all(set(r.base_pass_to_pass.values()) == {"PASSED"} for r in results)


def test_instances_jsonl_is_up_to_date() -> None:
    expected = build_instances.render(build_instances.build_all())
    assert BUNDLED_JSONL.read_text(encoding="utf-8") == expected, (
        "instances.jsonl is stale; run: python -m suites.swe.build_instances"
    )
    assert build_instances.main(["--check"]) == 0


def test_base_commit_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = BUNDLED[0]
    tree = PROJECTS_DIR / instance.instance_id / "repo"
    kwargs = {
        "message": bundled_commit_message(instance.repo, instance.version),
        "date": commit_date(instance.created_at),
    }
    first = build_repo_from_tree(tree, tmp_path / "one", **kwargs)
    # The user's git identity, dates and a different umask must not change the hash.
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Someone Else")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2001-01-01T00:00:00")
    old_umask = os.umask(0o077)
    try:
        second = build_repo_from_tree(tree, tmp_path / "two", **kwargs)
    finally:
        os.umask(old_umask)
    assert first == second == instance.base_commit
    log = subprocess.run(
        ["git", "log", "--format=%an <%ae> %ad", "--date=iso"],
        cwd=tmp_path / "two",
        capture_output=True,
        text=True,
    )
    assert log.stdout.startswith("ampbench <")


def test_build_rejects_a_patch_that_does_not_apply(tmp_path: Path) -> None:
    project = tmp_path / "ampbench__broken-1"
    (project / "repo").mkdir(parents=True)
    (project / "repo" / "a.py").write_text("x = 1\n")
    (project / "instance.yaml").write_text(
        "repo: ampbench/broken\nversion: '1'\ncreated_at: '2024-01-01T00:00:00Z'\n"
        "problem_statement: p\nFAIL_TO_PASS: []\nPASS_TO_PASS: []\n"
    )
    (project / "gold.patch").write_text("--- a/b.py\n+++ b/b.py\n@@ -1 +1 @@\n-y\n+z\n")
    (project / "test.patch").write_text("")
    with pytest.raises(UserError, match="patch does not apply"):
        build_instances.build_all(tmp_path)


# --------------------------------------------------------------------------- grading that cannot be gamed


def _new_file(path: str, text: str) -> str:
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{body}"
    )


def test_a_conftest_forcing_every_outcome_is_removed_before_grading(monkeypatch: pytest.MonkeyPatch) -> None:
    calendarkit = next(inst for inst in BUNDLED if inst.instance_id == "ampbench__calendarkit-1")
    patch = _new_file("conftest.py", FORCING_CONFTEST)
    result = grade(calendarkit, patch)
    assert not result.resolved and result.status == "unresolved"
    assert result.fail_to_pass_passed == 0 and result.pass_to_pass_passed == 14
    assert result.restored == ["removed conftest.py (conftest)"]
    assert result.reason.endswith(
        "; test infrastructure reset to base_commit: removed conftest.py (conftest)"
    )
    assert result.to_row()["grade_reason"] == result.reason
    # Without the reset the very same patch is graded resolved: the exploit is real.
    monkeypatch.setattr(grading, "restore_test_infrastructure", lambda *args: [])
    gamed = grade(calendarkit, patch)
    assert gamed.resolved and (gamed.fail_to_pass_passed, gamed.pass_to_pass_passed) == (4, 14)


def test_a_real_fix_with_a_forcing_conftest_is_resolved_and_the_reset_said() -> None:
    calendarkit = next(inst for inst in BUNDLED if inst.instance_id == "ampbench__calendarkit-1")
    result = grade(calendarkit, calendarkit.patch + _new_file("tests/conftest.py", FORCING_CONFTEST))
    assert result.resolved and result.status == "resolved"
    assert result.reason == "test infrastructure reset to base_commit: removed tests/conftest.py (conftest)"


def test_what_counts_as_test_infrastructure(tmp_path: Path) -> None:
    # pathguard's PASS_TO_PASS file tests/test_names.py is not in its test patch.
    pathguard = next(inst for inst in BUNDLED if inst.instance_id == "ampbench__pathguard-1")
    with Workspace.create(pathguard, base_dir=tmp_path) as ws:
        pyproject = ws.read_text("pyproject.toml")
        changes = {
            "conftest.py": FORCING_CONFTEST,
            "tests/conftest.py": FORCING_CONFTEST,
            "tests/test_names.py": "def test_nothing():\n    pass\n",
            "tests/pytest.ini": "",  # empty: no ---/+++ lines in the diff, pytest still reads it
            "pyproject.toml": pyproject.replace('testpaths = ["tests"]', 'addopts = "-p no:python"'),
            "sitecustomize.py": "import os\n",
            "evil.pth": "import os\n",
            "pytest.py": "print('PASSED')\n",
            "json.py": "x = 1\n",
            "pluggy/__init__.py": "x = 1\n",
            "fake-1.0.dist-info/entry_points.txt": "[pytest11]\nfake = fake\n",
            # A real change, a new module inside the package, a new test: they stay.
            "pathguard/json.py": "x = 1\n",
            "pathguard/helpers.py": "x = 1\n",
            "README.md": ws.read_text("README.md") + "\nMore.\n",
            "tests/test_more.py": "def test_more():\n    pass\n",
        }
        for path, text in changes.items():
            ws.write_text(path, text)
        patch = ws.diff()
        found = {
            path: (what, existed)
            for path, what, existed in grading.infrastructure_changes(ws, pathguard, patch)
        }
        assert found == {
            "conftest.py": ("conftest", False),
            "tests/conftest.py": ("conftest", False),
            "tests/test_names.py": ("graded test file", True),
            "tests/pytest.ini": ("pytest configuration", False),
            "pyproject.toml": ("pytest settings", True),
            "sitecustomize.py": ("Python start-up file", False),
            "evil.pth": ("Python start-up file", False),
            "pytest.py": ("shadows the module pytest", False),
            "json.py": ("shadows the module json", False),
            "pluggy/__init__.py": ("shadows the module pluggy", False),
            "fake-1.0.dist-info/entry_points.txt": ("package metadata", False),
        }
        restored = grading.restore_test_infrastructure(ws, pathguard, patch)
        assert "restored pyproject.toml (pytest settings)" in restored and len(restored) == len(found)
        left = patch_paths(ws.diff())
        assert sorted(left) == [
            "README.md",
            "pathguard/helpers.py",
            "pathguard/json.py",
            "tests/test_more.py",
        ]
        # A pyproject.toml change that leaves pytest's settings alone stays.
        ws.write_text("pyproject.toml", pyproject.replace('version = "0.9.1"', 'version = "0.9.2"'))
        assert grading.infrastructure_changes(ws, pathguard, ws.diff()) == []


# --------------------------------------------------------------------------- loader


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "instances.jsonl"
    assert write_instances(path, BUNDLED) == len(BUNDLED)
    loaded = read_instances(path)
    assert loaded.instances == BUNDLED and loaded.warnings == []
    # The dataset encodes the test lists as JSON strings.
    row = json.loads(path.read_text().splitlines()[0])
    assert isinstance(row["FAIL_TO_PASS"], str) and json.loads(row["FAIL_TO_PASS"]) == list(
        BUNDLED[0].fail_to_pass
    )


def test_json_list_round_trip_with_real_lists_and_extra_columns(tmp_path: Path) -> None:
    rows = []
    for inst in BUNDLED:
        row = inst.to_record()
        row["FAIL_TO_PASS"] = list(inst.fail_to_pass)  # some exports decode them
        row["difficulty"] = "<15 min fix"
        rows.append(row)
    path = tmp_path / "verified.json"
    path.write_text(json.dumps(rows))
    loaded = read_instances(path).instances
    assert [i.instance_id for i in loaded] == IDS
    assert loaded[0].fail_to_pass == BUNDLED[0].fail_to_pass
    assert loaded[0].extra == {"difficulty": "<15 min fix"}
    assert loaded[0].to_record()["difficulty"] == "<15 min fix"


def test_parquet_round_trip(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "lite.parquet"
    pd.DataFrame([inst.to_record() for inst in BUNDLED]).to_parquet(path)
    assert read_instances(path).instances == BUNDLED


def test_filters() -> None:
    assert [i.instance_id for i in select(BUNDLED, task_ids=f"{IDS[3]},{IDS[1]}")] == [IDS[1], IDS[3]]
    assert [i.instance_id for i in select(BUNDLED, task_ids=[IDS[2]])] == [IDS[2]]
    assert select(BUNDLED, limit=3) == BUNDLED[:3]
    with pytest.raises(UserError, match=r"unknown task id\(s\) 'nope__x-1'"):
        select(BUNDLED, task_ids="nope__x-1")
    with pytest.raises(UserError, match="at least 1"):
        select(BUNDLED, limit=0)
    assert bundled_instances(task_ids=IDS[0])[0].instance_id == IDS[0]


def test_shards_partition_the_instances() -> None:
    shards = [select(BUNDLED, shard=f"{i}/3") for i in (1, 2, 3)]
    assert sorted(i.instance_id for s in shards for i in s) == sorted(IDS)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert select(BUNDLED, shard="2/3", limit=1) == [shards[1][0]]
    assert parse_shard(" 2 / 4 ") == (2, 4)
    for bad in ("0/3", "4/3", "1/0", "half", "1-3"):
        with pytest.raises(UserError, match="shard"):
            parse_shard(bad)


def test_bad_rows_are_skipped_with_warnings_naming_file_and_line(tmp_path: Path) -> None:
    good = BUNDLED[0].to_record()
    no_commit = {k: v for k, v in BUNDLED[1].to_record().items() if k != "base_commit"}
    bad_tests = dict(BUNDLED[2].to_record(), FAIL_TO_PASS="tests/a.py::t")
    path = _write_jsonl(tmp_path / "mixed.jsonl", [good, "{not json", no_commit, bad_tests, good])
    loaded = load_instances(path)
    assert [i.instance_id for i in loaded.instances] == [IDS[0]]
    assert loaded.warnings == [
        f"{path}:2: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{path}:3: missing field base_commit",
        f"{path}:4: FAIL_TO_PASS must be a JSON-encoded list of test ids",
        f"{path}:5: duplicate instance_id '{IDS[0]}'",
    ]
    with pytest.raises(UserError, match=rf"^{path}:2: invalid JSON"):
        load_instances(path, strict=True)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("broken.json", '[{"instance_id": "a",\n  oops]', r"broken.json:2: invalid JSON"),
        ("object.json", '{"instance_id": "a"}', r"expected a JSON list of instances, got a JSON dict"),
        ("empty.jsonl", "\n\n", r"empty.jsonl: no valid instances"),
        (
            "allbad.jsonl",
            '{"instance_id": "a"}\n',
            r"allbad.jsonl: no valid instances \(first problem: .*:1: missing fields",
        ),
        (
            "repo.jsonl",
            json.dumps(dict(BUNDLED[0].to_record(), repo="not a repo")),
            r"repo must look like 'owner/name'",
        ),
    ],
)
def test_malformed_files_raise_one_line_user_errors(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        load_instances(path, strict=name == "repo.jsonl")
    assert "\n" not in str(info.value)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_instances(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- pytest output and predictions


def test_parse_pytest_summary() -> None:
    output = "\n".join(
        [
            "tests/t.py::test_a PASSED",  # verbose progress lines are not the summary
            "=========================== short test summary info ============================",
            "PASSED tests/t.py::test_a",
            "PASSED tests/t.py::test_p[a - b]",
            "FAILED tests/t.py::test_b - AssertionError: assert 1 == 2",
            "PASSED tests/t.py::TestX::test_c",
            "ERROR tests/t.py::TestX::test_c - RuntimeError: teardown",
            "XFAIL tests/t.py::test_d - reason",
            "SKIPPED [1] tests/t.py:9: no network",
        ]
    )
    ids = [
        "tests/t.py::test_a",
        "tests/t.py::test_p[a - b]",
        "tests/t.py::test_b",
        "tests/t.py::TestX::test_c",
        "tests/t.py::test_d",
    ]
    assert parse_pytest_summary(output, ids) == {
        "tests/t.py::test_a": "PASSED",
        "tests/t.py::test_p[a - b]": "PASSED",
        "tests/t.py::test_b": "FAILED",
        "tests/t.py::TestX::test_c": "ERROR",
        "tests/t.py::test_d": "XFAIL",
    }
    assert parse_pytest_summary("FAILED tests/t.py::test_b - boom")["tests/t.py::test_b"] == "FAILED"
    assert pytest_command(["tests/b.py::x", "tests/a.py::y[1]", "tests/b.py::z"]) == (
        "python -m pytest -rA --tb=short --color=no -p no:cacheprovider tests/a.py tests/b.py"
    )


def test_predictions_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run" / "preds.jsonl"
    rows = [
        {
            "instance_id": inst.instance_id,
            "model_name_or_path": "sim:oracle",
            "model_patch": inst.patch,
            "extra": 1,
        }
        for inst in BUNDLED[:2]
    ]
    assert write_predictions(path, rows) == 2
    assert (
        write_predictions(
            path, [{"instance_id": "x", "model_name_or_path": "m", "model_patch": None}], append=True
        )
        == 1
    )
    back = read_predictions(path)
    assert [set(r) for r in back] == [{"instance_id", "model_name_or_path", "model_patch"}] * 3
    assert back[0]["model_patch"] == BUNDLED[0].patch and back[2]["model_patch"] == ""
    with pytest.raises(ValueError, match="model_patch"):
        write_predictions(path, [{"instance_id": "x", "model_name_or_path": "m"}])
