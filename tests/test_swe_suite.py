"""The swe suite adapter, its two scaffolds, the tool environment and the simulated SWE agents.

End to end, the simulator's server-side request count is the ground truth for
the exchange counts, and the resolved rates come from real test runs.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness.conversation import ModelTurn, ToolCall, ToolResult, UserMessage
from harness.errors import UserError
from harness.runner import RunConfig, Runner
from harness.sim.profiles import PROFILES, register
from harness.sim.server import SimServer
from harness.sim.view import Reply, ReplyCall, View
from suites import get_suite
from suites.swe import grading
from suites.swe.environment import PathMap, SweEnvironment, deterministic, elide
from suites.swe.execution import available_guards
from suites.swe.instances import bundled_instances
from suites.swe.limits import owner_tag
from suites.swe.scaffolds import BashOnlyScaffold, ToolsScaffold, bash_blocks
from suites.swe.sim_agents import SUBMIT_SENTINEL, parse_patch, plan_length
from suites.swe.suite import EXTRA_COLUMNS, SweSuite
from tests.conftest import ampbench, processes_with

BUNDLED = bundled_instances()
IDS = [inst.instance_id for inst in BUNDLED]
REAL_GUARD = any(ok for guard, ok in available_guards().items() if guard != "none")
FAKE_ANTHROPIC_KEY = "sk-ant-test-FAKE-KEY-0123456789abcdef"
FAKE_OPENAI_KEY = "sk-test-FAKE-OPENAI-KEY-0123456789abcdef"


def read_tasks(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "tasks.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_in_process(tmp_path: Path, models: list[str], name: str = "run", **suite_options) -> Path:
    suite_options.setdefault("workspace_dir", str(tmp_path / "workspaces"))
    (tmp_path / "workspaces").mkdir(exist_ok=True)
    cassettes = suite_options.pop("cassettes", "off")
    task_ids = suite_options.pop("task_ids", None)
    config = RunConfig(
        suite="swe",
        models=models,
        out=str(tmp_path / name),
        suite_options=suite_options,
        task_ids=task_ids,
        cassettes=cassettes,
        cassette_dir=str(tmp_path / "cassettes"),
        concurrency=4,
    )
    return Runner(config, progress=False).run()


def env_for(suite: SweSuite, instance_id: str) -> SweEnvironment:
    task = next(t for t in suite.tasks() if t.id == instance_id)
    return suite.environment(task)


def run(env: SweEnvironment, name: str, **arguments) -> ToolResult:
    return asyncio.run(env.execute(ToolCall("c1", name, arguments)))


# --------------------------------------------------------------------------- determinism policy


def test_deterministic_maps_the_workspace_and_masks_timings(tmp_path: Path) -> None:
    root = tmp_path / "ampbench-swe-x-k3j9"
    paths = PathMap.for_workspace(root, "/workspace")
    raw = (
        f"rootdir: {root}/repo\n"
        "platform linux -- Python 3.11.9, pytest-8.3.4, pluggy-1.5.0\n"
        "..F  [100%]\n"
        "===== 1 failed, 2 passed, 1 warning in 0.12s =====\n"
        "3 passed in 61.20s (0:01:01)\n"
        "Ran 4 tests in 0.003s\n"
        f"{root.name}\n"
        "my program finished in 3s\n"
    )
    assert deterministic(raw, paths) == (
        "rootdir: /workspace/repo\n"
        "platform linux -- Python <version>, pytest-<version>, pluggy-<version>\n"
        "..F  [100%]\n"
        "===== 1 failed, 2 passed, 1 warning in <duration> =====\n"
        "3 passed in <duration>\n"
        "Ran 4 tests in <duration>\n"
        "workspace\n"
        "my program finished in 3s\n"
    )
    # Two different workspaces give the same observation.
    other = PathMap.for_workspace(tmp_path / "ampbench-swe-x-zz01", "/workspace")
    assert deterministic(f"{tmp_path}/ampbench-swe-x-zz01/repo/a.py", other) == "/workspace/repo/a.py"
    # The shown name maps back in commands, as a whole path component only.
    assert paths.real("cd /workspace/repo && cat '/workspace/x' /workspaces/y") == (
        f"cd {root}/repo && cat '{root}/x' /workspaces/y"
    )


def test_racing_shell_errors_come_out_in_one_order(tmp_path: Path) -> None:
    paths = PathMap.for_workspace(tmp_path / "ws", "/workspace")
    a = "/usr/bin/bash: line 1: list-files: command not found"
    b = "/usr/bin/bash: line 1: amp: command not found"
    one = deterministic(f"<output>\n{a}\n{b}\nrest\n", paths)
    other = deterministic(f"<output>\n{b}\n{a}\nrest\n", paths)
    assert one == other == f"<output>\n{b}\n{a}\nrest\n"
    # Other lines keep their order.
    assert deterministic("z\ny\n", paths) == "z\ny\n"


def test_elide_keeps_head_and_tail() -> None:
    text = "a" * 50 + "b" * 50
    out = elide(text, 20)
    assert out.startswith("a" * 10) and out.endswith("b" * 10)
    assert "80 characters elided" in out
    assert elide("short", 20) == "short"


# --------------------------------------------------------------------------- scaffolds


def test_bash_only_scaffold_needs_exactly_one_block() -> None:
    scaffold = BashOnlyScaffold(format_error=lambda n: f"found {n} blocks")
    one = scaffold.actions(ModelTurn(text="THOUGHT: look\n\n```bash\nls -la\n```"))
    assert [(c.name, c.arguments) for c in one.calls] == [("bash", {"command": "ls -la"})]
    assert one.feedback is None and not one.done
    assert scaffold.actions(ModelTurn(text="no block here")).feedback == "found 0 blocks"
    two = scaffold.actions(ModelTurn(text="```bash\nls\n```\n```bash\npwd\n```"))
    assert two.feedback == "found 2 blocks" and not two.calls
    assert bash_blocks("```python\nprint(1)\n```") == []
    observed = scaffold.observe(one.calls, [ToolResult("bash-1", "bash", "<returncode>0</returncode>")])
    assert observed == UserMessage("<returncode>0</returncode>")


def test_tools_scaffold_reminds_when_no_tool_is_called() -> None:
    scaffold = ToolsScaffold(no_tool_call_feedback="call a tool")
    assert scaffold.actions(ModelTurn(text="I am done")).feedback == "call a tool"
    call = ToolCall("t1", "submit", {})
    actions = scaffold.actions(ModelTurn(tool_calls=[call]))
    assert actions.calls == [call] and not actions.done and actions.feedback is None


# --------------------------------------------------------------------------- the suite


def test_suite_tasks_follow_the_config() -> None:
    tools = SweSuite(scaffold="tools")
    tasks = tools.tasks()
    assert [t.id for t in tasks] == IDS
    task = tasks[0]
    assert BUNDLED[0].problem_statement.strip() in task.user_messages[0]
    assert "/workspace/repo" in task.user_messages[0]
    assert [t.name for t in task.tools] == ["bash", "str_replace_editor", "submit"]
    assert task.limits.max_steps == task.limits.max_steps_per_turn == 250
    assert task.limits.max_cost_usd == 3.0
    bash = SweSuite(scaffold="bash-only", step_limit=40, cost_limit=1.5)
    task = bash.tasks()[0]
    assert task.tools == ()
    assert f"echo {SUBMIT_SENTINEL}" in task.user_messages[0]
    assert task.limits.max_steps == 40 and task.limits.max_cost_usd == 1.5
    assert SweSuite.name == "swe" and SweSuite.default_repeats == 1
    assert "format_errors" not in EXTRA_COLUMNS
    # The filters of the CLI: --tasks N and --shard i/n.
    assert [t.id for t in SweSuite(limit=3).tasks()] == IDS[:3]
    assert [t.id for t in SweSuite(shard="2/4").tasks()] == IDS[1::4]


def test_bad_options_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown scaffold 'bash' \(available: tools, bash-only\)"):
        get_suite("swe", scaffold="bash")
    with pytest.raises(UserError, match=r"unknown backend 'k8s' \(available: local, docker\)"):
        get_suite("swe", backend="k8s")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"instance_id": ')
    with pytest.raises(UserError, match=r"broken.json:1: invalid JSON") as info:
        SweSuite(instances=broken)
    assert "\n" not in str(info.value)
    # Every option is checked when the suite is made, not when a task run first uses it.
    for options, message in (
        ({"guard": "bogus"}, r"unknown guard 'bogus' \(choose from auto, bwrap, unshare, none\)"),
        ({"guard": "none", "command_network": False}, "network: false needs a guard"),
        ({"limits": {"memory": "lots"}}, "environment.limits.memory must be a size"),
        ({"limits": {"processes": 2}}, "environment.limits.processes must be an integer >= 8"),
        ({"command_timeout_s": 0}, "the command timeout must be a positive number"),
        ({"max_output_bytes": -5}, "max_output_bytes must be a positive number"),
        ({"repo_mirror": str(tmp_path / "nowhere")}, "is not a directory"),
        ({"network": "yes"}, "network must be true or false"),
    ):
        with pytest.raises(UserError, match=message) as info:
            SweSuite(**options)
        assert "\n" not in str(info.value)


def test_an_unknown_guard_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = ampbench(
        "run", "--suite", "swe", "--model", "sim:swe-oracle", "--guard", "bogus", "--out", str(out)
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown guard 'bogus' (choose from auto, bwrap, unshare, none)"
    assert not out.exists()


def test_missing_container_engine_is_one_clear_line() -> None:
    result = ampbench(
        "run",
        "--suite",
        "swe",
        "--model",
        "sim:swe-oracle",
        "--backend",
        "docker",
        env={"AMPBENCH_CONTAINER_ENGINE": "no-such-engine --flag"},
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: container engine 'no-such-engine --flag': no-such-engine is not installed"
    )


# --------------------------------------------------------------------------- the environment


@pytest.fixture
def tools_suite(tmp_path: Path) -> SweSuite:
    return SweSuite(scaffold="tools", workspace_dir=tmp_path, command_timeout_s=2)


def test_editor_semantics(tools_suite: SweSuite) -> None:
    env = env_for(tools_suite, "ampbench__tinycsv-1")
    try:
        path = "tinycsv/parser.py"
        view = run(env, "str_replace_editor", command="view", path=path, view_range=[1, 3])
        assert view.content.startswith(f"{path} (lines 1-3 of ") and "     1\t" in view.content
        many = run(env, "str_replace_editor", command="str_replace", path=path, old_str="return", new_str="x")
        assert many.is_error and "occurs" in many.content and "times" in many.content
        none = run(env, "str_replace_editor", command="str_replace", path=path, old_str="no such text")
        assert none.is_error and "does not occur verbatim" in none.content
        inserted = run(
            env, "str_replace_editor", command="insert", path=path, insert_line=0, new_str="# hi\n"
        )
        assert not inserted.is_error and "     1\t# hi" in inserted.content
        exists = run(env, "str_replace_editor", command="create", path=path, file_text="x")
        assert exists.is_error and "already exists" in exists.content
        created = run(
            env, "str_replace_editor", command="create", path="/workspace/repo/new.py", file_text="a\n"
        )
        assert not created.is_error
        listing = run(env, "str_replace_editor", command="view", path="/workspace/repo")
        assert "/workspace/repo/new.py" in listing.content and ".git" not in listing.content
        patch = asyncio.run(env.model_patch())
        assert "+# hi" in patch and "new.py" in patch
        assert not env.finished
        run(env, "submit")
        assert env.finished
    finally:
        asyncio.run(env.close())


def test_commands_that_hang_flood_or_leave_the_workspace(tools_suite: SweSuite, tmp_path: Path) -> None:
    env = env_for(tools_suite, "ampbench__lrukit-1")
    outside = tmp_path / "outside"
    outside.mkdir()
    try:
        hang = run(env, "bash", command="sleep 30; echo never")
        assert hang.is_error
        assert "[ampbench: the command timed out after 2 s and was killed]" in hang.content
        assert "<returncode>-9</returncode>" in hang.content
        flood = run(env, "bash", command="yes")  # endless output: killed after ~1 MiB
        assert "[ampbench: output truncated after" in flood.content
        assert len(flood.content) < tools_suite.observation_max_chars + 400
        read = run(env, "str_replace_editor", command="view", path="/etc/passwd")
        assert read.is_error and "outside the workspace" in read.content
        escape = run(env, "str_replace_editor", command="create", path="../../escape.txt", file_text="x")
        assert escape.is_error and "outside the workspace" in escape.content
        write = run(env, "bash", command=f"echo x > {outside}/file.txt; echo rc=$?")
        if REAL_GUARD:
            assert not (outside / "file.txt").exists()
            assert "Read-only file system" in write.content
        where = run(env, "bash", command="pwd; echo $HOME")
        assert "/workspace/repo\n/workspace/home" in where.content
        assert str(tmp_path) not in where.content
    finally:
        asyncio.run(env.close())
    assert list(tmp_path.glob("ampbench-swe-*")) == []


def test_bash_only_submits_on_the_sentinel(tmp_path: Path) -> None:
    suite = SweSuite(scaffold="bash-only", workspace_dir=tmp_path)
    env = env_for(suite, "ampbench__wrapline-1")
    try:
        run(env, "bash", command="echo not yet")
        assert not env.finished
        run(env, "bash", command=f"echo {SUBMIT_SENTINEL}")
        assert env.finished
    finally:
        asyncio.run(env.close())


# --------------------------------------------------------------------------- simulated agents


def test_profiles_have_different_step_counts() -> None:
    for mode in ("tools", "bash-only"):
        lengths = {p: [plan_length(p, iid, mode) for iid in IDS] for p in ("swe-oracle", "swe-explorer")}
        assert all(e > o for o, e in zip(lengths["swe-oracle"], lengths["swe-explorer"], strict=True))
    moneybag = next(i for i in BUNDLED if i.instance_id == "ampbench__moneybag-1")
    changes = parse_patch(moneybag.patch)
    assert [c.path for c in changes] == ["moneybag/currency.py", "moneybag/format.py", "moneybag/money.py"]
    assert sum(len(c.hunks) for c in changes) == 6
    # oracle, tools: list + a view per file + a str_replace per hunk + tests + submit
    assert plan_length("swe-oracle", moneybag.instance_id, "tools") == 1 + 3 + 6 + 1 + 1
    assert plan_length("swe-oracle", moneybag.instance_id, "bash-only") == 1 + 3 + 1 + 1 + 1


def sim_env(server: SimServer) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": server.url,
        "OPENAI_BASE_URL": server.url + "/v1",
        "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
    }


@pytest.mark.parametrize(
    ("scaffold", "models"),
    [
        ("tools", ["anthropic:swe-oracle", "openai:swe-flailer"]),
        ("bash-only", ["openai:swe-oracle", "anthropic:swe-flailer"]),
    ],
)
def test_whole_mini_suite_against_the_simulator(tmp_path: Path, scaffold: str, models: list[str]) -> None:
    out = tmp_path / "run"
    with SimServer() as server:
        args = ["run", "--suite", "swe", "--scaffold", scaffold, "--out", str(out), "--no-progress"]
        for model in models:
            args += ["--model", model]
        result = ampbench(*args, env=sim_env(server))
        assert result.returncode == 0, result.stderr[-3000:]
        stats = server.stats()
    tasks = read_tasks(out)
    assert len(tasks) == len(IDS) * len(models)
    # Every exchange the ledger saw is one the simulator received, and none was missed.
    exchanges = read_jsonl(out / "exchanges.jsonl")
    assert len(exchanges) == stats["requests"] == sum(int(t["exchanges"]) for t in tasks)
    by_profile = Counter()
    for row in tasks:
        by_profile[row["model"].split(":", 1)[1]] += int(row["exchanges"])
    assert dict(by_profile) == stats["by_model"]
    per_task = Counter((e["task_id"], e["model"]) for e in exchanges)
    mode = "tools" if scaffold == "tools" else "bash-only"
    for row in tasks:
        profile = row["model"].split(":", 1)[1]
        # The count is known in advance from the profile's plan, and the ledger agrees per task.
        assert int(row["exchanges"]) == int(row["model_calls"]) == plan_length(profile, row["task_id"], mode)
        assert per_task[(row["task_id"], row["model"])] == int(row["exchanges"])
        assert row["status"] == "ok" and row["stop_reason"] == "completed"
    oracle = [t for t in tasks if t["model"].endswith("swe-oracle")]
    flailer = [t for t in tasks if t["model"].endswith("swe-flailer")]
    assert sum(t["resolved"] == "true" for t in oracle) >= 9
    assert all(t["score"] == "1.0" for t in oracle if t["resolved"] == "true")
    assert sum(t["resolved"] == "true" for t in flailer) == 0
    # The flailer's unreadable response is a format error: still an exchange and a model call.
    assert all(int(t["format_errors"]) == 1 for t in flailer)
    assert all(int(t["tool_calls"]) == int(t["model_calls"]) - 1 for t in flailer)
    # Resolved means the maintainers' tests ran and passed.
    assert all(t["f2p_passed"] == t["f2p_total"] != "0" for t in oracle if t["resolved"] == "true")
    preds = read_jsonl(out / "preds.jsonl")
    assert len(preds) == len(tasks)
    assert {tuple(sorted(p)) for p in preds} == {("instance_id", "model_name_or_path", "model_patch")}
    assert all(p["model_patch"].startswith("diff --git") for p in preds)
    # A prediction is a patch SWE-bench's harness can grade: regrade one of the oracle's.
    sample = next(p for p in preds if p["model_name_or_path"].endswith("swe-oracle"))
    instance = next(i for i in BUNDLED if i.instance_id == sample["instance_id"])
    assert grading.grade(instance, sample["model_patch"]).resolved


@pytest.mark.slow
@pytest.mark.parametrize("scaffold", ["tools", "bash-only"])
def test_three_profiles_in_process(tmp_path: Path, scaffold: str) -> None:
    run_dir = run_in_process(
        tmp_path, ["sim:swe-oracle", "sim-anthropic:swe-explorer", "sim:swe-flailer"], scaffold=scaffold
    )
    tasks = read_tasks(run_dir)
    assert len(tasks) == 3 * len(IDS)
    resolved = Counter(t["model"] for t in tasks if t["resolved"] == "true")
    assert resolved["sim:swe-oracle"] == resolved["sim-anthropic:swe-explorer"] == len(IDS)
    assert resolved["sim:swe-flailer"] == 0
    assert list((tmp_path / "workspaces").iterdir()) == []


def test_record_then_replay_gives_identical_counts(tmp_path: Path) -> None:
    counts = []
    for mode, name in (("record", "recorded"), ("replay", "replayed")):
        for scaffold, model, task in (
            ("tools", "sim-anthropic:swe-explorer", "ampbench__unitconv-1"),
            ("bash-only", "sim:swe-flailer", "ampbench__pathguard-1"),
        ):
            run_dir = run_in_process(
                tmp_path, [model], f"{name}-{scaffold}", scaffold=scaffold, cassettes=mode, task_ids=[task]
            )
            rows = read_tasks(run_dir)
            keep = ("task_id", "model", "status", "model_calls", "exchanges", "tool_calls")
            keep += ("format_errors", "input_tokens", "output_tokens", "score", "resolved", "patch_bytes")
            counts.append((mode, [{k: r[k] for k in keep} for r in rows]))
            assert rows[0]["status"] == "ok", rows[0]["error"]
    recorded = [rows for mode, rows in counts if mode == "record"]
    replayed = [rows for mode, rows in counts if mode == "replay"]
    assert recorded == replayed
    assert recorded[0][0]["resolved"] == "true" and recorded[1][0]["format_errors"] == "1"


# --------------------------------------------------------------------------- robustness in a run


@dataclass(frozen=True)
class Hostile:
    """A test agent: hangs, floods, tries to write outside, then submits."""

    outside: str
    name: str = "swe-test-hostile"
    description: str = "test only"

    def respond(self, view: View, rng_key: bytes) -> Reply:
        steps = [
            ReplyCall("bash", {"command": "sleep 30; echo never"}),
            ReplyCall("bash", {"command": "yes"}),
            ReplyCall("bash", {"command": f"echo x > {self.outside}/file.txt"}),
            ReplyCall("str_replace_editor", {"command": "view", "path": "/etc/hostname"}),
            ReplyCall("submit", {}),
        ]
        k = sum(1 for m in view.messages if m.role == "assistant")
        return Reply(tool_calls=[steps[min(k, len(steps) - 1)]])


@pytest.fixture
def hostile(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    register(Hostile(str(outside)))
    try:
        yield outside
    finally:
        PROFILES.pop("swe-test-hostile", None)


def test_a_hostile_agent_does_not_stop_the_run(tmp_path: Path, hostile: Path) -> None:
    run_dir = run_in_process(
        tmp_path,
        ["sim:swe-test-hostile", "sim:swe-oracle"],
        command_timeout_s=1,
        cassettes="record",
        task_ids=["ampbench__lrukit-1", "ampbench__wrapline-1"],
    )
    tasks = read_tasks(run_dir)
    assert len(tasks) == 4
    for row in tasks:
        assert row["status"] == "ok" and row["stop_reason"] == "completed", row
        assert float(row["wall_s"]) < 30
    assert all(t["resolved"] == "true" for t in tasks if t["model"] == "sim:swe-oracle")
    if REAL_GUARD:
        assert not (hostile / "file.txt").exists()
    # The observations said what happened (read back from the recorded request bodies).
    cassette = tmp_path / "cassettes" / "swe" / "sim_swe-test-hostile" / "ampbench__lrukit-1__r0.json"
    last = json.loads(json.loads(cassette.read_text())["interactions"][-1]["request"]["body"])
    seen = json.dumps(last["messages"])
    assert "timed out after 1 s and was killed" in seen
    assert "output truncated after" in seen
    assert "outside the workspace" in seen
    tool_rows = read_jsonl(run_dir / "tool_calls.jsonl")
    assert max(r["output_bytes"] for r in tool_rows) < 12_000
    assert list((tmp_path / "workspaces").iterdir()) == []


def test_missing_repo_ends_that_task_only(tmp_path: Path) -> None:
    instances = tmp_path / "instances.jsonl"
    missing = BUNDLED[0].to_record() | {"instance_id": "nowhere__gone-1", "repo": "nowhere/gone"}
    # A statement the simulator does not know (no gold patch to know it by): it explores and
    # submits without a fix.
    unknown = BUNDLED[2].to_record() | {
        "problem_statement": "Something is off somewhere; please look.",
        "patch": "",
    }
    rows = [missing, BUNDLED[1].to_record(), unknown]
    instances.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    run_dir = run_in_process(
        tmp_path,
        ["sim:swe-oracle"],
        instances=str(instances),
        repo_mirror=str(mirror),
        network=False,
    )
    tasks = {t["task_id"]: t for t in read_tasks(run_dir)}
    gone = tasks["nowhere__gone-1"]
    assert gone["status"] == "error" and gone["stop_reason"] == "error"
    assert "repo nowhere/gone not found in the mirror" in gone["error"]
    assert gone["exchanges"] == "0"  # ended before its first model call
    assert tasks[BUNDLED[1].instance_id]["resolved"] == "true"
    explored = tasks[BUNDLED[2].instance_id]
    assert explored["resolved"] == "false" and explored["model_calls"] == "3"
    assert explored["grade_reason"].startswith("empty patch")
    # The errored task run has no prediction (an empty patch would read as a real attempt).
    preds = read_jsonl(run_dir / "preds.jsonl")
    assert sorted(p["instance_id"] for p in preds) == sorted(t for t in tasks if t != "nowhere__gone-1")
    assert list((tmp_path / "workspaces").iterdir()) == []


def test_an_environment_that_cannot_run_the_tests_is_no_verdict(tmp_path: Path) -> None:
    # The oracle applies the gold patch, but this environment lacks a dependency the
    # instance's tests import: PASS_TO_PASS fail at base_commit too. tasks.csv says
    # env_error and why; the score and `resolved` are unknown (empty), not 0.
    lrukit = next(inst for inst in BUNDLED if inst.instance_id == "ampbench__lrukit-1")
    missing = (
        "diff --git a/tests/conftest.py b/tests/conftest.py\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/tests/conftest.py\n@@ -0,0 +1 @@\n+import ampbench_missing_dependency_zz\n"
    )
    instances = tmp_path / "instances.jsonl"
    record = lrukit.to_record() | {"test_patch": lrukit.test_patch + missing}
    instances.write_text(json.dumps(record) + "\n")
    run_dir = run_in_process(tmp_path, ["sim:swe-oracle"], instances=str(instances))
    row = read_tasks(run_dir)[0]
    assert row["status"] == "ok" and int(row["patch_bytes"]) > 0
    assert row["grade_status"] == "env_error"
    assert row["grade_reason"].startswith("PASS_TO_PASS tests fail at base_commit without the model patch")
    assert "ampbench_missing_dependency_zz" in row["grade_reason"]
    assert row["score"] == "" and row["resolved"] == ""


async def _until(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert condition()


def test_a_cancelled_task_run_leaves_no_command_and_no_workspace(tmp_path: Path) -> None:
    # What SIGTERM and Ctrl-C do to a run: task runs are cancelled, environments closed.
    suite = SweSuite(workspace_dir=tmp_path / "ws")
    env = env_for(suite, "ampbench__lrukit-1")
    marker = f"400.1{os.getpid() % 997}"

    async def scenario() -> float:
        call = ToolCall("c1", "bash", {"command": f"sleep {marker} & sleep {marker}; echo never"})
        running = asyncio.create_task(env.execute(call))
        await _until(lambda: len(processes_with(marker)) == 2)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        started = time.monotonic()
        await env.close()
        return time.monotonic() - started

    started = time.monotonic()
    assert asyncio.run(scenario()) < 10
    assert time.monotonic() - started < 30  # asyncio.run waited for the command's thread too
    assert processes_with(marker) == []
    assert list((tmp_path / "ws").iterdir()) == []


def test_a_cancelled_grade_kills_the_test_run_and_removes_its_workspace(tmp_path: Path) -> None:
    suite = SweSuite(workspace_dir=tmp_path / "ws")
    task = next(t for t in suite.tasks() if t.id == "ampbench__lrukit-1")
    env = suite.environment(task)
    marker = f"400.2{os.getpid() % 997}"
    # A patch whose package hangs when the tests import it.
    assert env.workspace is not None
    init = env.workspace.read_text("lrukit/__init__.py")
    env.workspace.write_text(
        "lrukit/__init__.py", f"{init}\nimport subprocess\nsubprocess.run(['sleep', '{marker}'])\n"
    )

    async def scenario() -> None:
        grading_run = asyncio.create_task(suite.grade(task, [], env, None))
        await _until(lambda: bool(processes_with(marker)))
        grading_run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await grading_run
        await env.close()

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 30
    assert processes_with(marker) == []
    assert list((tmp_path / "ws").iterdir()) == []


def test_clean_stale_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    suite = SweSuite(workspace_dir=tmp_path / "ws")
    assert suite.clean_stale() == []
    dead = subprocess.Popen(["true"])
    dead.wait()
    root = tmp_path / "ws" / "ampbench-swe-x-1234"
    (root / "repo").mkdir(parents=True)
    tag = f"{owner_tag().split('-')[0]}-{dead.pid}-1"
    Path(f"{root}.owner").write_text(json.dumps({"host": os.uname().nodename, "owner": tag, "pid": dead.pid}))
    assert suite.clean_stale() == [f"workspace {root}"]
    assert list((tmp_path / "ws").iterdir()) == []


def test_workspaces_are_removed_when_grading_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("grader crashed")

    monkeypatch.setattr(grading, "grade", broken)
    run_dir = run_in_process(tmp_path, ["sim:swe-oracle"], task_ids=["ampbench__tinycsv-1"])
    row = read_tasks(run_dir)[0]
    assert row["status"] == "error" and "grader crashed" in row["error"]
    assert list((tmp_path / "workspaces").iterdir()) == []


# --------------------------------------------------------------------------- shared grades


def _graded_patches(monkeypatch: pytest.MonkeyPatch, outcome: str | None = None) -> list[str]:
    """The patches grading.grade really ran tests for; `outcome` forces that status."""
    seen: list[str] = []
    real = grading.grade

    def spy(instance, patch, *args, **kwargs):
        seen.append(patch)
        result = real(instance, patch, *args, **kwargs)
        if outcome is not None:
            result.status, result.resolved = outcome, False
        return result

    monkeypatch.setattr(grading, "grade", spy)
    return seen


def _grade_all(suite: SweSuite, instance_id: str, edits: list[str | None]) -> list[dict]:
    """Task runs of one instance, each with its own workspace (`edits`: text appended to the
    package's __init__.py, or None for no change), graded concurrently."""
    task = next(t for t in suite.tasks() if t.id == instance_id)
    envs = [suite.environment(task) for _ in edits]
    for env, edit in zip(envs, edits, strict=True):
        assert env.workspace is not None
        if edit is not None:
            init = env.workspace.read_text("lrukit/__init__.py")
            env.workspace.write_text("lrukit/__init__.py", init + edit)

    async def scenario() -> list[dict]:
        grades = await asyncio.gather(*(suite.grade(task, [], env, None) for env in envs))
        for env in envs:
            await env.close()
        return [g.details for g in grades]

    return asyncio.run(scenario())


def test_identical_patches_share_one_test_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graded = _graded_patches(monkeypatch)
    suite = SweSuite(workspace_dir=tmp_path / "ws")
    details = _grade_all(suite, "ampbench__lrukit-1", [None, "\n# a\n", None, "\n# a\n", "\n# b\n"])
    # Three distinct patches (empty, # a, # b): three test runs for five task runs.
    assert len(graded) == 3 and len(set(graded)) == 3
    assert details[0] == details[2] and details[1] == details[3]
    assert all(d["grade_status"] == "unresolved" for d in details)
    assert details[0]["patch_bytes"] == 0 < details[1]["patch_bytes"]
    # The setting off: every task run runs the tests.
    graded.clear()
    suite = SweSuite(workspace_dir=tmp_path / "ws")
    suite.share_grades = False
    _grade_all(suite, "ampbench__lrukit-1", [None, None])
    assert len(graded) == 2


def test_runs_in_one_process_share_verdicts_only_in_the_same_test_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graded = _graded_patches(monkeypatch)
    # Two runs (two suites) grading the same patch in the same environment: one test run.
    for run in ("a", "b"):
        _grade_all(SweSuite(workspace_dir=tmp_path / run), "ampbench__lrukit-1", ["\n# a\n"])
    assert len(graded) == 1
    # Another time limit, or another variable in the commands' environment: tested again.
    other_limit = SweSuite(workspace_dir=tmp_path / "c")
    other_limit.grade_timeout_s = 599
    other_env = SweSuite(workspace_dir=tmp_path / "d")
    other_env.command_env = {**other_env.command_env, "AMPBENCH_TEST_MARK": "1"}
    for suite in (other_limit, other_env):
        _grade_all(suite, "ampbench__lrukit-1", ["\n# a\n"])
    assert len(graded) == 3


def test_grade_key_names_everything_that_decides_a_verdict() -> None:
    instance = next(i for i in bundled_instances() if i.instance_id == "ampbench__lrukit-1")
    env = grading.local_workspaces(guard="auto", limits=None)
    key = grading.grade_key(instance, "p", env, 600)
    assert key == grading.grade_key(instance, "p", grading.local_workspaces(guard="auto", limits=None), 600)
    assert key != grading.grade_key(instance, "q", env, 600)
    assert key != grading.grade_key(instance, "p", env, 60)
    assert key != grading.grade_key(instance, "p", grading.local_workspaces(guard="none", limits=None), 600)
    for change in (
        {"test_patch": instance.test_patch + "\n"},
        {"fail_to_pass": instance.fail_to_pass[:-1]},
        {"pass_to_pass": ()},
        {"base_commit": "0" * 40},
        {"version": "9.9"},
    ):
        assert key != grading.grade_key(replace(instance, **change), "p", env, 600), change


def test_a_timed_out_grade_is_not_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graded = _graded_patches(monkeypatch, outcome="timeout")
    suite = SweSuite(workspace_dir=tmp_path / "ws")
    details = _grade_all(suite, "ampbench__lrukit-1", [None, None])
    # A timeout may be the machine's, not the patch's: the second task run tries again.
    assert len(graded) == 2
    assert [d["grade_status"] for d in details] == ["timeout", "timeout"]
