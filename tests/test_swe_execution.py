"""Local execution (timeouts, output cap, scrubbed env, the guard), Docker's error path, workspaces."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.errors import UserError
from suites.swe import execution
from suites.swe import workspace as workspace_module
from suites.swe.execution import (
    BackendClosed,
    DockerBackend,
    LocalBackend,
    _docker_hits,
    available_guards,
    docker_image_name,
    docker_limit_flags,
    is_secret_name,
    limit_enforcement,
    scrubbed_env,
)
from suites.swe.instances import Instance, bundled_instances
from suites.swe.limits import (
    DEFAULT_LIMITS,
    CgroupSupport,
    ResourceLimits,
    cgroup_support,
    format_size,
    limits_from_config,
    owner_tag,
    parse_size,
    remove_stale_cgroups,
)
from suites.swe.workspace import (
    DockerWorkspace,
    PatchError,
    Workspace,
    WorkspaceError,
    _retry_removal,
    _rmtree,
    build_repo_from_tree,
    find_in_mirror,
    host_git,
    remove_stale_workspaces,
    workspace_root,
)
from tests.conftest import REPO, fork_script, processes_with

GUARDS = available_guards()
WORKING_GUARDS = [g for g, ok in GUARDS.items() if ok]
REAL_GUARDS = [g for g in WORKING_GUARDS if g != "none"]
LRUKIT = next(i for i in bundled_instances() if i.instance_id == "ampbench__lrukit-1")


def _wait_gone(argument: str, seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_with(argument)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


# --------------------------------------------------------------------------- hangs


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_hanging_command_times_out_and_its_children_die(root: Path, guard: str) -> None:
    marker = f"100.0{os.getpid() % 997}"  # a sleep duration no other process uses
    backend = LocalBackend(root, guard=guard)
    started = time.monotonic()
    result = backend.run(f"sleep {marker} & sleep {marker}; echo never", timeout_s=1)
    assert time.monotonic() - started < 5
    assert result["timed_out"] is True
    assert result["returncode"] == -9
    assert result["output"] == "[ampbench: the command timed out after 1 s and was killed]"
    assert result["guard"] == guard
    assert _wait_gone(marker) == []


def test_processes_escaping_the_process_group_are_killed_too(root: Path) -> None:
    # Without a PID namespace a command can leave its process group with setsid;
    # the marker variable in its environment still finds it.
    marker = f"100.1{os.getpid() % 997}"
    result = LocalBackend(root, guard="none").run(f"setsid sleep {marker} & sleep {marker}", timeout_s=1)
    assert result["timed_out"]
    assert _wait_gone(marker) == []


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_background_processes_are_waited_for_then_killed_at_the_timeout(root: Path, guard: str) -> None:
    # A command is over when everything it started has exited; what still runs at
    # the timeout is killed with the rest, and the result says so.
    marker = f"100.2{os.getpid() % 997}"
    started = time.monotonic()
    result = LocalBackend(root, guard=guard).run(f"sleep {marker} & echo started", timeout_s=1)
    assert 1 <= time.monotonic() - started < 5
    assert result["output"] == "started\n[ampbench: the command timed out after 1 s and was killed]"
    assert result["timed_out"] and result["returncode"] == -9
    assert _wait_gone(marker) == []


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_a_background_job_slower_than_any_grace_is_in_the_output(root: Path, guard: str) -> None:
    # The old runner gave background jobs a 1 s grace after the shell exited (and a
    # PID namespace killed them the moment it did): this job's line was lost.
    backend = LocalBackend(root, guard=guard)
    result = backend.run("(sleep 1.5; echo late) & echo early", timeout_s=30)
    assert result["output"] == "early\nlate\n"
    assert result["returncode"] == 0 and not result["timed_out"]
    # Jobs that write elsewhere, or leave the process group, are waited for as well.
    result = backend.run(
        "(sleep 0.3; echo done > job.txt) >/dev/null 2>&1 & "
        "setsid sh -c '(sleep 0.3; echo done > daemon.txt) &' >/dev/null 2>&1; echo ok",
        timeout_s=30,
    )
    assert result["output"] == "ok\n" and not result["timed_out"]
    assert (root / "job.txt").read_text() == (root / "daemon.txt").read_text() == "done\n"


@pytest.fixture
def busy_machine():
    """Every core busy with a spinning process while the test runs (as on a loaded CI box)."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range((os.cpu_count() or 1) + 1)
    ]
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_quick_background_jobs_are_in_the_output_every_time(root: Path, guard: str, busy_machine) -> None:
    # `a & b`: the background job's error used to race the end of the command. Which of
    # the two lines comes first is still up to the scheduler (the observation policy
    # sorts such lines); that both are there is not.
    backend = LocalBackend(root, guard=guard)
    outputs = {
        tuple(sorted(backend.run("nosuchcmd_zz & echo fg", timeout_s=30)["output"].splitlines()))
        for _ in range(8)
    }
    assert outputs == {("/usr/bin/bash: line 1: nosuchcmd_zz: command not found", "fg")}


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_exit_status_and_signals_pass_through_the_reaper(root: Path, guard: str) -> None:
    backend = LocalBackend(root, guard=guard)
    assert backend.run("exit 3")["returncode"] == 3
    # A signal's death reads as a shell says it, under every guard alike.
    assert backend.run("kill -SEGV $$")["returncode"] == 128 + 11
    # SIGPIPE is the default again in the command (Python, the reaper, ignores it).
    assert backend.run("yes | head -2; echo ${PIPESTATUS[0]}")["output"] == "y\ny\n141\n"
    missing = backend.exec_argv(["ampbench-no-such-program"])
    assert missing.returncode == 127 and b"ampbench-no-such-program" in missing.stderr
    # Input the command does not read does not hold it up.
    started = time.monotonic()
    head = backend.exec_argv(["head", "-c", "3"], stdin=b"abcdef" * 200_000, timeout_s=20)
    assert head.stdout == b"abc" and head.returncode == 0 and time.monotonic() - started < 10


# --------------------------------------------------------------------------- endless output


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_endless_output_is_truncated_with_bounded_memory(root: Path, guard: str) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.monotonic()
    result = LocalBackend(root, guard=guard).run("yes", timeout_s=30, max_output_bytes=10_000)
    assert time.monotonic() - started < 10
    assert result["truncated"] is True and result["timed_out"] is False
    assert result["returncode"] == -9
    body, _, note = result["output"].rpartition("\n")
    assert len(body.encode()) <= 10_000 and set(body.split("\n")) <= {"y", ""}
    assert note == (
        "[ampbench: output truncated after 10000 bytes; the command printed more than 1048576 bytes and was killed]"
    )
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kib < 64 * 1024


def test_output_a_little_over_the_cap_lets_the_command_finish(root: Path) -> None:
    result = LocalBackend(root, guard="none").run(
        "head -c 3000 /dev/zero | tr '\\0' x; echo; echo done >&2", max_output_bytes=1000
    )
    assert result["returncode"] == 0 and result["truncated"]
    assert (
        result["output"]
        == "x" * 1000 + "\n[ampbench: output truncated after 1000 bytes; 2006 more bytes were dropped]"
    )


# --------------------------------------------------------------------------- environment


def test_environment_is_scrubbed(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "FAKE_API_KEY": "sk-fake-123",
        "OPENAI_API_KEY": "sk-openai",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
        "GITHUB_TOKEN": "ghp_token_value",
        "MY_SERVICE_SECRET": "service-secret-value",
        "HTTP_COOKIE": "cookie-value",
        "PLAIN_HARMLESS": "not-inherited-either",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    backend = LocalBackend(root, guard="none", home=root / "home", tmpdir=root / "tmp")
    result = backend.run("echo ${FAKE_API_KEY:-unset}; env")
    lines = result["output"].splitlines()
    assert lines[0] == "unset"
    env = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    for name, value in secrets.items():
        assert name not in env
        assert value not in result["output"]
    assert env["HOME"] == str(root / "home") and env["TMPDIR"] == str(root / "tmp")
    assert env["LANG"] == "C.UTF-8" and env["TZ"] == "UTC"
    assert not [name for name in env if is_secret_name(name)]


def test_secret_names() -> None:
    for name in (
        "OPENAI_API_KEY",
        "FAKE_API_KEY",
        "GH_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "DB_PASSWORD",
        "SSH_AUTH_SOCK",
        "X_SECRET",
    ):
        assert is_secret_name(name), name
    for name in (
        "PATH",
        "HOME",
        "GIT_AUTHOR_NAME",
        "MONKEY_PATCH",
        "KEYBOARD",
        "PYTHONHASHSEED",
        "TOKENIZERS_PARALLELISM",
    ):
        assert not is_secret_name(name), name
    with pytest.raises(ValueError, match="MY_TOKEN"):
        scrubbed_env(home="/h", tmpdir="/t", extra={"MY_TOKEN": "x"})


def test_the_harness_python_is_on_path(root: Path) -> None:
    result = LocalBackend(root, guard="none").run("python -c 'import pytest, sys; print(sys.prefix)'")
    assert result["returncode"] == 0, result["output"]


def test_a_command_that_cannot_start_is_data(root: Path) -> None:
    result = LocalBackend(root, guard="none").run("true", cwd="../..")
    assert result["returncode"] is None and result["exception"].startswith("ValueError: ")


# --------------------------------------------------------------------------- leaving the workspace


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_writing_outside_the_workspace(tmp_path: Path, guard: str) -> None:
    """What each guard guarantees about `echo x > ../outside.txt` and friends.

    For every guard: the agent's cwd is <root>/repo, so ../outside.txt lands in
    the workspace root, and it is gone when the workspace closes. With bwrap or
    unshare, writes anywhere outside the root fail (read-only file system). With
    no guard, they succeed: the local backend alone is not a sandbox.
    """
    base = tmp_path / "base"
    base.mkdir()
    elsewhere = tmp_path / "elsewhere.txt"
    with Workspace.create(LRUKIT, base_dir=base, guard=guard) as ws:
        near = ws.run("echo x > ../outside.txt; echo rc=$?")
        assert near["output"].endswith("rc=0\n")
        assert (ws.root / "outside.txt").is_file()  # inside the workspace root...
        far = ws.run(f"echo x > ../../outside.txt; echo rc=$?; echo y > {elsewhere}; echo rc=$?")
        sandboxed = guard != "none"
        if sandboxed:
            assert "Read-only file system" in far["output"]
            assert far["output"].count("rc=1") == 2
            assert not (base / "outside.txt").exists() and not elsewhere.exists()
        else:
            assert (base / "outside.txt").exists() and elsewhere.exists()
        assert ws.diff() == ""  # nothing of this is part of the model patch
        root = ws.root
    assert not root.exists()  # ...and removed with it
    assert sorted(p.name for p in base.iterdir()) == ([] if sandboxed else ["outside.txt"])


@pytest.mark.parametrize("guard", REAL_GUARDS)
def test_guard_hides_harness_processes_and_cannot_be_undone(root: Path, guard: str) -> None:
    backend = LocalBackend(root, guard=guard)
    result = backend.run(
        f"test -e /proc/{os.getpid()} && echo visible || echo hidden; mount -o remount,rw / 2>/dev/null && echo rw || echo ro"
    )
    assert result["output"] == "hidden\nro\n"


def test_unknown_or_unavailable_guard_is_a_user_error(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="unknown guard 'jail'"):
        LocalBackend(root, guard="jail")
    monkeypatch.setattr(execution.shutil, "which", lambda name, *a, **k: None)
    execution._guard_works.cache_clear()
    try:
        with pytest.raises(UserError, match="apt-get install -y bubblewrap"):
            LocalBackend(root, guard="bwrap")
        assert LocalBackend(root, guard="auto").guard == "none"
    finally:
        monkeypatch.undo()
        execution._guard_works.cache_clear()


# --------------------------------------------------------------------------- docker


def test_docker_image_name() -> None:
    assert (
        docker_image_name("django__django-11099")
        == "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
    )
    assert docker_image_name("Foo__Bar-1", namespace="me") == "me/sweb.eval.x86_64.foo_1776_bar-1:latest"


def test_missing_container_engine_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        DockerBackend("swebench/sweb.eval.x86_64.x:latest", engine="no-such-docker-binary")
    assert str(info.value) == (
        "container engine 'no-such-docker-binary': no-such-docker-binary is not installed"
    )
    # A CLI that is there but reaches no engine (the docker CLI without its daemon).
    broken = tmp_path / "docker"
    broken.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(UserError, match="does not run here: Cannot connect to the Docker daemon"):
        DockerWorkspace.create(LRUKIT, "swebench/x:latest", engine=str(broken))


# A stand-in for the docker CLI: `exec` runs the command here, in the -w directory.
FAKE_DOCKER = """#!/bin/bash
case "$1" in
  info) echo 27.0.0 ;;
  run) echo fake-container ;;
  image|rm) ;;
  exec)
    shift; dir=.
    while [ $# -gt 0 ]; do
      case "$1" in
        -i) shift ;;
        -w) dir=$2; shift 2 ;;
        -e) export "$2"; shift 2 ;;
        *) break ;;
      esac
    done
    shift
    # Like the real CLI: the exit status of the command, no "Killed" line of this shell.
    cd "$dir" && { "$@" 2>&3 3>&-; } 3>&2 2>/dev/null ;;
esac
"""


def test_docker_commands_wait_for_background_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    marker = f"100.3{os.getpid() % 997}"
    with DockerBackend("swebench/fake:latest", workdir=str(tmp_path), engine="docker") as backend:
        result = backend.run("(sleep 1.5; echo late) & echo early", timeout_s=30)
        assert result["output"] == "early\nlate\n" and result["returncode"] == 0
        assert result["guard"] == "docker"
        result = backend.run(f"sleep {marker} & echo started", timeout_s=1)
        assert result["timed_out"] and result["returncode"] == 137
        assert result["output"] == "started\n[ampbench: the command timed out after 1 s and was killed]"
        assert backend.run("exit 3")["returncode"] == 3
    assert _wait_gone(marker) == []


def test_docker_containers_get_the_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker-run.txt"
    # The fake CLI of above, also writing down the options of `docker run`.
    fake = FAKE_DOCKER.replace(
        "run) echo fake-container ;;", f'run) echo "$@" >> {log}; echo fake-container ;;'
    )
    (bin_dir / "docker").write_text(fake)
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with DockerBackend(
        "swebench/fake:latest", workdir=str(tmp_path), network=False, engine="docker"
    ) as backend:
        # Normal commands print exactly what they printed before (no counters, no notes).
        result = backend.run("echo out; echo err >&2", timeout_s=30)
        assert result["output"] == "out\nerr\n" and result["limits_hit"] == []
    options = log.read_text().split()
    for flag in docker_limit_flags(DEFAULT_LIMITS, network=False):
        assert flag in options
    assert "--pids-limit=512" in options and f"--memory={4 << 30}" in options
    assert f"--ulimit=fsize={1 << 30}:{1 << 30}" in options and "--network=none" in options
    assert any(o.startswith("--label=ampbench.owner=") for o in options)
    assert "--storage-opt" not in " ".join(options)  # no disk quota unless asked for
    assert f"--storage-opt=size={10 << 30}" in docker_limit_flags(ResourceLimits(disk_bytes=10 << 30))


def test_docker_limit_counters_are_read_apart_from_the_output() -> None:
    stderr = b"ampbench-limits: pids=0 memory=2 | pids=7 memory=2 \n"
    assert _docker_hits(stderr) == ({"processes"}, b"")
    stderr = b"Error: oops\nampbench-limits: pids=0 memory=0 | pids=0 memory=1 \n"
    assert _docker_hits(stderr) == ({"memory"}, b"Error: oops\n")
    assert _docker_hits(b"Error response from daemon\n") == (set(), b"Error response from daemon\n")


# --------------------------------------------------------------------------- workspaces


def test_workspace_is_removed_after_an_exception(tmp_path: Path) -> None:
    seen = []
    with pytest.raises(RuntimeError), Workspace.create(LRUKIT, base_dir=tmp_path) as ws:
        seen.append(ws.root)
        ws.run("chmod -w . tests")  # even with directories made read-only
        raise RuntimeError("agent crashed")
    assert not seen[0].exists() and list(tmp_path.iterdir()) == []


def test_workspace_is_removed_after_keyboard_interrupt(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), Workspace.create(LRUKIT, base_dir=tmp_path):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_workspace_close_is_idempotent_and_finalizer_cleans_up(tmp_path: Path) -> None:
    ws = Workspace.create(LRUKIT, base_dir=tmp_path)
    root = ws.root
    ws.close()
    ws.close()
    assert ws.closed and not root.exists()
    forgotten = Workspace.create(LRUKIT, base_dir=tmp_path)
    root = forgotten.root
    del forgotten  # garbage collected without close()
    assert not root.exists()


def test_diff_has_new_and_deleted_files_but_no_caches(tmp_path: Path) -> None:
    with Workspace.create(LRUKIT, base_dir=tmp_path) as ws:
        assert ws.source == "bundled" and ws.head_commit() == LRUKIT.base_commit
        ws.run(
            "echo new > NOTES.txt && rm README.md && mkdir -p lrukit/__pycache__ .pytest_cache x.egg-info"
            " && touch lrukit/__pycache__/cache.cpython-311.pyc .pytest_cache/v x.egg-info/PKG-INFO"
            " && git add -A && git commit -qm wip && echo more >> NOTES.txt"
        )
        ws.write_text("lrukit/extra.py", "VALUE = 1\n")
        patch = ws.diff()
        assert "b/NOTES.txt" in patch and "+new\n+more" in patch
        assert "deleted file mode" in patch and "a/README.md" in patch
        assert "b/lrukit/extra.py" in patch
        assert "pycache" not in patch and "pytest_cache" not in patch and "egg-info" not in patch
        # The agent's own index is untouched by diff().
        assert ws.run("git status --short")["output"] == " M NOTES.txt\n?? lrukit/extra.py\n"
    with Workspace.create(LRUKIT, base_dir=tmp_path) as fresh:
        assert fresh.apply(patch) == "git apply"
        assert fresh.read_text("NOTES.txt") == "new\nmore\n"


def test_bundled_checkouts_are_copies_of_one_commit(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "suites/swe/projects/ampbench__lrukit-1/repo", tree)
    built = build_repo_from_tree(tree, tmp_path / "built", message="m", date="2024-01-02T03:04:05+00:00")
    templates = workspace_module._Templates()
    a, b = tmp_path / "a", tmp_path / "b"
    # The same commit as a fresh build, and a clean checkout (nothing staged, nothing new).
    assert templates.copy(tree, a, message="m", date="2024-01-02T03:04:05+00:00") == built
    assert templates.copy(tree, b, message="m", date="2024-01-02T03:04:05+00:00") == built
    for checkout in (a, b):
        assert host_git(["status", "--porcelain"], checkout).stdout == b""
        assert host_git(["fsck", "--no-progress"], checkout).returncode == 0
    # Copies, not links: what one task run writes, the other does not see.
    (a / "README.md").write_text("changed\n")
    assert (b / "README.md").read_text() != "changed\n"
    assert host_git(["status", "--porcelain"], b).stdout == b""
    # An edited tree is committed anew.
    (tree / "README.md").write_text("edited upstream\n")
    again = templates.copy(tree, tmp_path / "c", message="m", date="2024-01-02T03:04:05+00:00")
    assert again != built
    assert again == build_repo_from_tree(tree, tmp_path / "d", message="m", date="2024-01-02T03:04:05+00:00")


@pytest.mark.skipif(workspace_module._memory_fs() is None, reason="no tmpfs at /dev/shm")
def test_small_checkouts_live_in_memory_and_stale_ones_are_found_there() -> None:
    memory = workspace_root(small=True)
    assert memory.parent == Path(workspace_module.MEMORY_FS)
    assert workspace_root().parent == Path(tempfile.gettempdir())
    with Workspace.create(LRUKIT) as ws:
        assert ws.root.parent == memory
    dead = subprocess.Popen(["true"])
    dead.wait()
    root = memory / f"ampbench-swe-stale-{os.getpid()}"
    (root / "repo").mkdir(parents=True)
    tag = f"{owner_tag().split('-')[0]}-{dead.pid}-1"
    Path(f"{root}.owner").write_text(json.dumps({"host": os.uname().nodename, "owner": tag, "pid": dead.pid}))
    assert root in remove_stale_workspaces()
    assert not root.exists()


@pytest.mark.skipif(not GUARDS.get("bwrap"), reason="bwrap does not work here")
@pytest.mark.skipif(workspace_module._memory_fs() is None, reason="no tmpfs at /dev/shm")
def test_a_workspace_on_the_guards_scratch_tmpfs_outlives_its_clearing() -> None:
    # bwrap gives commands a private /dev/shm and empties it after each command; a workspace
    # under /dev/shm is bound onto it and must survive that.
    with Workspace.create(LRUKIT, guard="bwrap") as ws:
        assert os.fspath(ws.root).startswith(workspace_module.MEMORY_FS + "/")
        first = ws.run(
            "echo kept > kept.txt && echo gone > /dev/shm/junk && mkdir -p ../sibling && ls /dev/shm"
        )
        assert first["returncode"] == 0, first["output"]
        second = ws.run("cat kept.txt; ls /dev/shm/junk ../sibling 2>&1 | wc -l; ls")
        assert second["output"].splitlines()[:2] == ["kept", "2"], second["output"]
        assert "lrukit" in second["output"]
        assert ws.head_commit() == LRUKIT.base_commit


def test_editor_paths_cannot_leave_the_workspace(tmp_path: Path) -> None:
    with Workspace.create(LRUKIT, base_dir=tmp_path) as ws:
        ws.run(f"ln -s {tmp_path} escape")
        with pytest.raises(WorkspaceError, match="outside the workspace"):
            ws.write_text("escape/pwned.txt", "x")
        with pytest.raises(WorkspaceError, match="outside the workspace"):
            ws.read_text("../../../etc/passwd")
        assert not (tmp_path / "pwned.txt").exists()


def test_apply_failure_changes_nothing(tmp_path: Path) -> None:
    half_bad = (
        LRUKIT.patch
        + "diff --git a/missing.py b/missing.py\n--- a/missing.py\n+++ b/missing.py\n@@ -1 +1 @@\n-a\n+b\n"
    )
    with Workspace.create(LRUKIT, base_dir=tmp_path) as ws:
        with pytest.raises(PatchError, match=r"missing\.py"):
            ws.apply(half_bad)
        assert ws.diff() == ""


def _git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.parametrize("layout", ["acme__widget", "acme/widget.git"])
def test_workspace_from_a_mirror_holds_no_future_commits(tmp_path: Path, layout: str) -> None:
    mirror = tmp_path / "mirror"
    upstream = mirror / layout
    upstream.mkdir(parents=True)
    _git(upstream, "init", "-q")
    (upstream / "widget.py").write_text("def f():\n    return 1\n")
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "-qm", "base")
    base = _git(upstream, "rev-parse", "HEAD")
    (upstream / "widget.py").write_text("def f():\n    return 2  # the fix\n")
    _git(upstream, "commit", "-qam", "the fix")
    instance = Instance(
        instance_id="acme__widget-7", repo="acme/widget", base_commit=base, problem_statement="f is wrong"
    )
    assert find_in_mirror(mirror, "acme/widget") == upstream
    with Workspace.create(instance, repo_mirror=mirror, network=False, base_dir=tmp_path) as ws:
        assert ws.source == f"mirror:{upstream}"
        assert ws.read_text("widget.py") == "def f():\n    return 1\n"
        log = ws.run("git log --all --oneline | wc -l; git rev-list --all | wc -l")
        assert log["output"] == "1\n1\n"
        assert "the fix" not in ws.run("git log --all -p")["output"]


def test_repo_that_cannot_be_found_is_one_clear_line(tmp_path: Path) -> None:
    instance = Instance(
        instance_id="acme__gone-1", repo="acme/gone", base_commit="a" * 40, problem_statement="x"
    )
    with pytest.raises(UserError) as info:
        Workspace.create(instance, repo_mirror=tmp_path / "mirror", network=False, base_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("acme__gone-1: repo acme/gone not found in the mirror")
    assert "git clone https://github.com/acme/gone" in message
    with pytest.raises(UserError, match="not bundled and network access is off; pass --repo-mirror DIR"):
        Workspace.create(instance, network=False, base_dir=tmp_path)
    # An unreachable URL (a local path here, so no network is needed) fails the same way.
    with pytest.raises(
        UserError, match=r"^acme__gone-1: repo acme/gone cannot be fetched from .*nowhere/gone: fatal: "
    ):
        Workspace.create(instance, url_template=str(tmp_path / "nowhere" / "{name}"), base_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_command_that_closes_its_output_still_runs_to_the_end(root: Path) -> None:
    backend = LocalBackend(root, guard="none")
    result = backend.run("exec >/dev/null 2>&1; sleep 0.3; echo finished > done.txt", timeout_s=10)
    assert result["returncode"] == 0 and not result["timed_out"]
    assert (root / "done.txt").read_text() == "finished\n"
    result = backend.run("exec >/dev/null 2>&1; sleep 30", timeout_s=0.5)
    assert result["timed_out"] and result["returncode"] == -9


# --------------------------------------------------------------------------- resource limits

CGROUPS = cgroup_support()
needs_cgroups = pytest.mark.skipif(
    not (CGROUPS.has("pids") and CGROUPS.has("memory")),
    reason=f"no usable pids and memory cgroups here ({'; '.join(CGROUPS.problems)})",
)
SMALL = ResourceLimits(processes=64, memory_bytes=256 << 20, file_size_bytes=16 << 20)

# 100 forks against a limit of 64; each child sleeps briefly and exits.
FORK_100 = fork_script(100, 0.5)


def test_limit_settings_parse_and_say_themselves() -> None:
    assert parse_size("4GiB", "x") == 4 << 30 and parse_size("512 MiB", "x") == 512 << 20
    assert (
        parse_size(1024, "x") == 1024 and parse_size("1G", "x") == 1 << 30 and parse_size(None, "x") is None
    )
    assert format_size(4 << 30) == "4 GiB" and format_size(1536 << 20) == "1.5 GiB"
    assert limits_from_config(None) == DEFAULT_LIMITS == ResourceLimits(512, 4 << 30, 1 << 30, None)
    assert limits_from_config({"memory": None, "file_size": "2GiB"}) == ResourceLimits(512, None, 2 << 30)
    for bad in ({"memory": "lots"}, {"processes": 0}, {"procs": 5}, {"file_size": -1}, {"memory": True}):
        with pytest.raises(UserError) as info:
            limits_from_config(bad)
        assert "\n" not in str(info.value)


@needs_cgroups
@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_limits_hold_and_are_reported_under_every_guard(root: Path, guard: str) -> None:
    backend = LocalBackend(root, guard=guard, limits=SMALL)
    assert backend.enforcement.mechanisms["processes"] == "cgroup pids.max"
    normal = backend.run("echo hi")
    assert normal["output"] == "hi\n" and normal["limits_hit"] == []  # no note for normal commands

    forks = backend.run(FORK_100, timeout_s=60)
    forked = int(forks["output"].split("forked ")[1].split(",")[0])
    assert forked < 64 and "refused" in forks["output"]
    assert forks["limits_hit"] == ["processes"]
    assert forks["output"].endswith("[ampbench: process limit (64) reached: some processes could not start]")

    memory = backend.run("python -c \"b = bytearray(512 << 20); print('allocated')\"", timeout_s=60)
    assert "allocated" not in memory["output"] and memory["returncode"] == 137
    assert memory["limits_hit"] == ["memory"]
    assert memory["output"].endswith(
        "[ampbench: memory limit (256 MiB) reached: a process of the command was killed]"
    )

    big = backend.run("head -c 100M /dev/zero > big; stat -c %s big", timeout_s=60)
    assert str(16 << 20) in big["output"] and (root / "big").stat().st_size == 16 << 20
    assert big["limits_hit"] == ["file_size"]
    assert big["output"].endswith("[ampbench: file size limit (16 MiB) reached: writing beyond it failed]")
    # git plumbing runs under the same limits.
    assert backend.exec_argv(["true"]).limits_hit == []


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_without_cgroups_the_rlimit_fallbacks_hold(
    root: Path, guard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    none_here = CgroupSupport((), ("pids: none here", "memory: none here"))
    monkeypatch.setattr(execution, "cgroup_support", lambda: none_here)
    backend = LocalBackend(root, guard=guard, limits=SMALL)
    notes = backend.enforcement.notes
    assert any(n.startswith("memory limit (256 MiB) holds per process only (RLIMIT_AS") for n in notes)
    # RLIMIT_NPROC is no limit for root: the process limit is said to be unenforced there.
    assert any(n == "process limit (64) not enforced: pids: none here" for n in notes) == (os.geteuid() == 0)
    # The rlimits the command starts with (bash: -f in KiB, -v in KiB).
    assert backend.run("ulimit -f; ulimit -v")["output"] == f"{16 << 10}\n{256 << 10}\n"
    memory = backend.run("python -c \"b = bytearray(512 << 20); print('allocated')\"")
    assert "MemoryError" in memory["output"] and "allocated" not in memory["output"]
    # Where RLIMIT_NPROC counts the command alone (a non-root guard's user namespace), it is set.
    monkeypatch.setattr(execution, "_nproc_applies", lambda guard: True)
    assert LocalBackend(root, guard=guard, limits=SMALL).run("ulimit -u")["output"] == "64\n"


def test_what_enforces_each_limit_is_said() -> None:
    enforcement = limit_enforcement(DEFAULT_LIMITS, "none")
    assert enforcement.mechanisms["file_size"] == "RLIMIT_FSIZE"
    if CGROUPS.has("memory"):
        assert enforcement.mechanisms["memory"] == "cgroup memory limit"
    else:
        assert any("RLIMIT_AS" in note for note in enforcement.notes)
    # The local backend has no disk quota: a limit it cannot hold is a note, not silence.
    disk = limit_enforcement(ResourceLimits(disk_bytes=10 << 30), "none")
    assert any(note.startswith("disk limit (10 GiB) not enforced") for note in disk.notes)


@needs_cgroups
def test_cgroups_of_commands_are_removed(root: Path) -> None:
    backend = LocalBackend(root, guard="none", limits=SMALL)
    before = {p for h in CGROUPS.hierarchies for p in h.parent.iterdir() if p.is_dir()}
    backend.run("sleep 0.1 & echo x")
    backend.run("sleep 30 & echo x", timeout_s=0.5)
    after = {p for h in CGROUPS.hierarchies for p in h.parent.iterdir() if p.is_dir()}
    assert not {p for p in after - before if p.name.split("-")[1] == str(os.getpid())}


# --------------------------------------------------------------------------- network


@pytest.mark.parametrize("guard", REAL_GUARDS)
def test_network_off_leaves_only_a_loopback_of_its_own(root: Path, guard: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = (
            f"python -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); "
            "print('reached the host')\" 2>/dev/null; "
            "python -c \"import socket; s = socket.create_server(('127.0.0.1', 0)); "
            "socket.create_connection(s.getsockname(), timeout=5); print('own loopback')\""
        )
        # By default commands reach services on the host's loopback (documented).
        assert LocalBackend(root, guard=guard).run(probe)["output"] == "reached the host\nown loopback\n"
        cut = LocalBackend(root, guard=guard, network=False)
        assert cut.enforcement.mechanisms["network"].startswith("off")
        assert cut.run(probe)["output"] == "own loopback\n"


def test_network_off_without_a_guard_is_a_user_error(root: Path) -> None:
    with pytest.raises(UserError, match="network: false needs a guard") as info:
        LocalBackend(root, guard="none", network=False)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- closing, stale workspaces


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_closing_a_workspace_kills_its_running_command(tmp_path: Path, guard: str) -> None:
    # A cancelled task run (SIGTERM, Ctrl-C) closes its environment while a command runs.
    marker = f"200.{len(guard)}{os.getpid() % 997}"
    ws = Workspace.create(LRUKIT, base_dir=tmp_path, guard=guard)
    outcome: dict[str, object] = {}

    def command() -> None:
        try:
            outcome["result"] = ws.run(f"sleep {marker} & sleep {marker}; echo never", timeout_s=120)
        except BackendClosed as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=command)
    thread.start()
    deadline = time.monotonic() + 10
    while len(processes_with(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_with(marker)) == 2
    started = time.monotonic()
    ws.close()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 10
    assert isinstance(outcome.get("error"), BackendClosed)
    assert _wait_gone(marker) == []
    assert list(tmp_path.iterdir()) == []  # the root and its owner file
    with pytest.raises(BackendClosed):
        ws.run("true")


def _program(pid: int) -> str:
    """The file name of the program `pid` runs ('' once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return os.path.basename(fh.read().split(b"\0")[0].decode())
    except OSError:
        return ""


# Makes a workspace, starts a long command in it, says where it is, and waits to be killed.
STALE_OWNER = textwrap.dedent(
    """\
    import sys, threading, time
    from suites.swe.instances import bundled_instances
    from suites.swe.workspace import Workspace
    instance = next(i for i in bundled_instances() if i.instance_id == "ampbench__lrukit-1")
    ws = Workspace.create(instance, base_dir=sys.argv[1], guard=sys.argv[2])
    threading.Thread(target=ws.run, args=(f"sleep {sys.argv[3]}",), kwargs={"timeout_s": 300}, daemon=True).start()
    print(ws.root, flush=True)
    time.sleep(300)
    """
)


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_workspaces_of_a_killed_harness_are_found_and_removed(tmp_path: Path, guard: str) -> None:
    marker = f"300.{len(guard)}{os.getpid() % 997}"
    owner = subprocess.Popen(
        [sys.executable, "-c", STALE_OWNER, str(tmp_path), guard, marker],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        root = Path(owner.stdout.readline().strip())

        def running() -> list[int]:
            # The `sleep` itself: the owner has the marker among its own arguments, and so has, for
            # an instant, every child it forks before that child execs (bwrap, the session server).
            return [pid for pid in processes_with(marker) if _program(pid) == "sleep"]

        deadline = time.monotonic() + 20
        while not running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running()
        owned = [p for h in CGROUPS.hierarchies for p in h.parent.iterdir() if f"-{owner.pid}-" in p.name]
    finally:
        owner.send_signal(signal.SIGKILL)  # no clean-up of any kind runs
        owner.wait()
    live = Workspace.create(LRUKIT, base_dir=tmp_path, guard=guard)
    try:
        assert root.is_dir() and Path(f"{root}.owner").is_file()
        owner_record = json.loads(Path(f"{root}.owner").read_text())
        assert owner_record["pid"] == owner.pid
        remove_stale_cgroups()
        if CGROUPS.hierarchies:
            assert owned  # the command had its cgroups...
            # ...and they are gone. The cgroup tree is the machine's: another ampbench run's
            # clean-up at its start may have removed them first, which is just as good.
            assert not [p for p in owned if p.exists()]
        assert remove_stale_workspaces(tmp_path) == [root]
        assert not root.exists() and not Path(f"{root}.owner").exists()
        assert _wait_gone(marker) == []
        assert live.root.is_dir()  # a live process's workspace stays
        assert remove_stale_workspaces(tmp_path) == []
    finally:
        live.close()
    assert list(tmp_path.iterdir()) == []


def test_removal_survives_a_second_remover_and_unreadable_directories(tmp_path: Path) -> None:
    # Two ampbench runs starting at once both clean the same stale workspace: what one removed,
    # the other's walk no longer finds. Seen as a traceback (`os.open` retried without flags).
    gone = tmp_path / "gone"
    _retry_removal(os.open, os.fspath(gone), (FileNotFoundError, FileNotFoundError(gone), None))
    # A directory rmtree could not open or list is walked again once it can be.
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("x")
    _retry_removal(os.open, os.fspath(tree / "a"), (PermissionError, PermissionError(), None))
    assert not (tree / "a").exists()
    # Many removers of one big tree at once: no error escapes, nothing is left.
    for round_ in range(3):
        root = tmp_path / f"ws{round_}"
        for i in range(40):
            (root / f"d{i}" / "sub").mkdir(parents=True)
            for j in range(10):
                (root / f"d{i}" / "sub" / f"f{j}").write_text("x")
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(_rmtree, [os.fspath(root)] * 4))
        assert not root.exists()
