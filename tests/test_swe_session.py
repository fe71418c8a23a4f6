"""One confined session per backend: the guard is set up once and every command runs inside it.

What the per-command guard promised must hold for every command of a session,
the second as much as the first: confinement, a fresh shell, the timeout killing
the whole tree, nothing of one command reaching the next, nothing left when the
backend closes or the harness dies. No assertion here depends on how fast the
machine is; waits for processes to go are generous upper bounds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from suites.swe import execution
from suites.swe.execution import BackendClosed, LocalBackend, available_guards
from suites.swe.session import SERVER
from tests.conftest import REPO, processes_with

GUARDS = available_guards()
WORKING_GUARDS = [g for g, ok in GUARDS.items() if ok]
REAL_GUARDS = [g for g in WORKING_GUARDS if g != "none"]


def _servers_of(root: Path) -> list[int]:
    """The session servers of the workspace `root` (python -I -S -B SERVER FD ROOT ...)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                words = fh.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if words[4:5] == [SERVER] and words[6:7] == [str(root)]:
            found.append(int(pid))
    # A command's reaper is a fork of its server, with the same command line.
    return [pid for pid in found if _parent(pid) not in found]


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _wait_gone(find, seconds: float = 20.0) -> list[int]:
    """What `find()` still finds once it finds nothing, or once `seconds` (an upper bound) passed."""
    deadline = time.monotonic() + seconds
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _wait_for(found, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not found() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(found())


def _marker(n: int) -> str:
    return f"40{n}.{os.getpid() % 997}"  # a sleep duration no other process uses


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def backends():
    """Backends made by a test, closed after it."""
    made: list[LocalBackend] = []

    def make(*args, **kwargs) -> LocalBackend:
        made.append(LocalBackend(*args, **kwargs))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_the_guard_is_set_up_once_for_all_commands(root: Path, guard: str, backends) -> None:
    backend = backends(root, guard=guard)
    assert backend._session.starts == 0  # nothing started before the first command
    for n in range(4):
        assert backend.run(f"echo {n}")["output"] == f"{n}\n"
    assert backend.exec_argv(["cat"], stdin=b"plumbing").stdout == b"plumbing"
    assert backend._session.starts == 1
    assert len(_servers_of(root)) == 1


@pytest.mark.parametrize("guard", REAL_GUARDS)
def test_every_command_of_a_session_is_confined(
    tmp_path: Path, root: Path, guard: str, monkeypatch: pytest.MonkeyPatch, backends
) -> None:
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    (secret_dir / "key").write_text("s3cret\n")
    secret_file = tmp_path / "token.txt"
    secret_file.write_text("t0ken\n")
    monkeypatch.setattr(execution, "_secret_paths", lambda: [str(secret_dir), str(secret_file)])
    backend = backends(root, guard=guard)
    outside = tmp_path / "outside.txt"
    probe = (
        f"echo x > {outside}; echo rc=$?; "
        f"ls -A {secret_dir}; cat {secret_file}; echo y > {secret_dir}/new; echo rc=$?; "
        f"test -e /proc/{os.getpid()} && echo harness-visible || echo harness-hidden; "
        "mount -o remount,rw / 2>/dev/null && echo rw || echo ro"
    )
    for _ in range(2):  # the second command as confined as the first
        result = backend.run(probe)
        lines = result["output"].splitlines()
        assert lines.count("rc=1") == 2 and "Read-only file system" in result["output"]
        assert "key" not in lines and "s3cret" not in result["output"] and "t0ken" not in result["output"]
        assert lines[-2:] == ["harness-hidden", "ro"]
    assert not outside.exists() and not (secret_dir / "new").exists()
    assert backend.run("echo in > inside.txt; cat inside.txt")["output"] == "in\n"  # the root stays writable
    assert backend._session.starts == 1


@pytest.mark.parametrize("guard", REAL_GUARDS)
def test_network_off_holds_for_every_command_of_a_session(root: Path, guard: str, backends) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        probe = (
            f"python -c \"import socket; socket.create_connection(('127.0.0.1', {server.getsockname()[1]}), "
            "timeout=5); print('reached the host')\" 2>/dev/null; echo done"
        )
        backend = backends(root, guard=guard, network=False)
        assert [backend.run(probe)["output"] for _ in range(2)] == ["done\n", "done\n"]


def test_starting_the_guard_is_not_the_first_commands_time(root: Path, backends) -> None:
    backend = backends(root, guard="none")
    wrap = backend._session._wrap
    # A guard that takes longer to start than the command may run.
    backend._session._wrap = lambda argv: ["sh", "-c", 'sleep 3; exec "$@"', "slow-guard", *wrap(argv)]
    result = backend.run("echo hi", timeout_s=2)
    assert result["output"] == "hi\n" and not result["timed_out"]


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_a_timeout_kills_the_tree_and_the_next_command_runs(root: Path, guard: str, backends) -> None:
    marker = _marker(1)
    backend = backends(root, guard=guard)
    hung = backend.run(f"sleep {marker} & setsid sleep {marker} & sleep {marker}; echo never", timeout_s=1)
    assert hung["timed_out"] and hung["returncode"] == -9
    assert hung["output"] == "[ampbench: the command timed out after 1 s and was killed]"
    assert _wait_gone(lambda: processes_with(marker)) == []
    after = backend.run("echo next; exit 4")
    assert after["output"] == "next\n" and after["returncode"] == 4 and not after["timed_out"]
    assert backend._session.starts == 1


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_a_killed_background_job_does_not_reach_the_next_command(root: Path, guard: str, backends) -> None:
    marker = _marker(2)
    backend = backends(root, guard=guard)
    backend.run("true")  # the guard is up: the short timeouts below are the commands' alone
    # The job outlives the command's timeout: it is killed with the command, so it can
    # neither print into a later command's output nor write a file after it.
    first = backend.run(
        f"(sleep {marker}; echo leaked; echo leaked > leak.txt) & echo first",
        timeout_s=1,
        max_output_bytes=1000,
    )
    assert first["output"] == "first\n[ampbench: the command timed out after 1 s and was killed]"
    assert _wait_gone(lambda: processes_with(marker)) == []
    second = backend.run("echo second; ls")
    assert second["output"] == "second\n" and not (root / "leak.txt").exists()
    # A job that ends in time is waited for and belongs to its own command's output.
    assert backend.run("(sleep 0.2; echo late) & echo early")["output"] == "early\nlate\n"
    assert backend.run("echo alone")["output"] == "alone\n"


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_no_shell_state_carries_over_between_commands(root: Path, guard: str, backends) -> None:
    (root / "sub").mkdir()
    backend = backends(root, guard=guard)
    show = "pwd; echo ${FOO:-unset}; umask; ulimit -n; type myfn 2>/dev/null || echo no-fn; trap"

    def env_of(output: str) -> dict[str, str]:
        pairs = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
        pairs.pop("AMPBENCH_EXEC_ID", None)  # guard none's per-command marker
        return pairs

    fresh = backend.run(show)["output"]
    env_before = env_of(backend.run("env")["output"])
    changed = backend.run(
        "cd sub && export FOO=bar && umask 077 && ulimit -n 64 && myfn() { :; } && trap 'echo bye' EXIT; "
        "pwd; echo $FOO"
    )
    assert changed["output"] == f"{root / 'sub'}\nbar\nbye\n"
    assert backend.run(show)["output"] == fresh
    assert fresh.startswith(f"{root}\nunset\n")
    assert env_of(backend.run("env")["output"]) == env_before
    # cwd= is per command, as before.
    assert backend.run("pwd", cwd="sub")["output"] == f"{root / 'sub'}\n"
    assert backend.run("pwd")["output"] == f"{root}\n"


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_a_command_inherits_nothing_but_its_stdio(root: Path, guard: str, backends) -> None:
    # Not the server's control socket, not the channel of its own or another command.
    backend = backends(root, guard=guard)
    # Tested by the shell itself, with no pipe, glob or child of its own open at that moment
    # (`ls /proc/$$/fd | tr` raced the shell closing its end of the pipe).
    probe = "for n in {0..64}; do [ -e /proc/$$/fd/$n ] && printf '%s ' $n; done; echo"
    for _ in range(2):
        assert backend.run(probe)["output"] == "0 1 2 \n"
    assert backend.exec_argv(["ls", "/proc/self/fd"], stdin=b"").stdout == b"0\n1\n2\n3\n"


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_a_removed_cwd_fails_to_start_as_before(root: Path, guard: str, backends) -> None:
    (root / "gone").mkdir()
    backend = backends(root, guard=guard)
    result = backend.run("true", cwd="gone")
    assert result["returncode"] == 0
    backend.run("rmdir gone")
    result = backend.run("true", cwd="gone")
    assert result["returncode"] is None
    assert result["exception"] == f"FileNotFoundError: [Errno 2] No such file or directory: '{root / 'gone'}'"
    assert backend.run("echo still")["output"] == "still\n"


@pytest.mark.parametrize("guard", REAL_GUARDS)
def test_a_command_cannot_take_down_its_session(root: Path, guard: str, backends) -> None:
    marker = _marker(3)
    backend = backends(root, guard=guard)
    # The server is PID 1 of the session's PID namespace: signals from inside do not reach it.
    assert backend.run("kill -9 1; kill -TERM 1; echo alive")["output"] == "alive\n"
    # Killing its own reaper ends the command, and what it started dies with it.
    killed = backend.run(f"(sleep {marker}; echo orphan) & sleep 0.1; kill -9 $PPID; wait", timeout_s=60)
    assert killed["returncode"] == -9 and "orphan" not in killed["output"] and not killed["timed_out"]
    assert _wait_gone(lambda: processes_with(marker)) == []
    assert backend.run("echo next")["output"] == "next\n"
    assert backend._session.starts == 1


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_a_session_that_died_is_started_again(root: Path, guard: str, backends) -> None:
    backend = backends(root, guard=guard)
    assert backend.run("echo one")["output"] == "one\n"
    session = backend._session
    assert session.pid is not None
    os.killpg(session.pid, signal.SIGKILL)
    assert session._launch is not None and session._launch.proc is not None
    session._launch.proc.wait(timeout=60)
    assert backend.run("echo two")["output"] == "two\n"
    assert session.starts == 2


@pytest.mark.parametrize("guard", REAL_GUARDS)
def test_a_session_dying_under_a_command_is_said(root: Path, guard: str, backends) -> None:
    marker = _marker(4)
    backend = backends(root, guard=guard)
    outcome: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(result=backend.run(f"sleep {marker}; echo never", timeout_s=120))
    )
    thread.start()
    assert _wait_for(lambda: processes_with(marker))  # it runs
    assert backend._session.pid is not None
    os.killpg(backend._session.pid, signal.SIGKILL)
    thread.join(60)
    result = outcome["result"]
    assert result["returncode"] is None and "the session ended" in result["exception"]
    assert _wait_gone(lambda: processes_with(marker)) == []
    assert backend.run("echo again")["output"] == "again\n"


@pytest.mark.skipif("bwrap" not in REAL_GUARDS, reason="bwrap does not work here")
def test_bwraps_private_dev_shm_is_emptied_after_each_command(root: Path, backends) -> None:
    backend = backends(root, guard="bwrap")
    first = backend.run("echo x > /dev/shm/f && ls /dev/shm; touch /dev/x 2>/dev/null || echo dev-ro")
    assert first["output"] == "f\ndev-ro\n"
    assert backend.run("ls -A /dev/shm")["output"] == ""


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_closing_the_backend_ends_its_session(root: Path, guard: str) -> None:
    backend = LocalBackend(root, guard=guard)
    assert backend.run("echo up")["output"] == "up\n"
    assert len(_servers_of(root)) == 1
    backend.close()
    assert _wait_gone(lambda: _servers_of(root)) == []
    with pytest.raises(BackendClosed):
        backend.run("true")


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_a_backend_nobody_closed_ends_its_session_when_collected(root: Path, guard: str) -> None:
    backend = LocalBackend(root, guard=guard)
    assert backend.run("echo up")["output"] == "up\n"
    del backend
    assert _wait_gone(lambda: _servers_of(root)) == []


# Starts a session with a long command, says so, and waits to be killed.
DOOMED_HARNESS = textwrap.dedent(
    """\
    import sys, threading, time
    from suites.swe.execution import LocalBackend
    backend = LocalBackend(sys.argv[1], guard=sys.argv[2])
    backend.run("true")
    threading.Thread(target=backend.run, args=(f"sleep {sys.argv[3]}",), kwargs={"timeout_s": 300}, daemon=True).start()
    print("started", flush=True)
    time.sleep(300)
    """
)


@pytest.mark.parametrize("guard", WORKING_GUARDS)
def test_the_session_dies_with_a_killed_harness(root: Path, guard: str) -> None:
    marker = _marker(5)
    harness = subprocess.Popen(
        [sys.executable, "-c", DOOMED_HARNESS, str(root), guard, marker],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )

    # The harness has the marker among its own arguments: the command is another process.
    def command() -> list[int]:
        return [pid for pid in processes_with(marker) if pid != harness.pid]

    try:
        assert harness.stdout is not None and harness.stdout.readline().strip() == "started"
        assert _wait_for(command)
        assert len(_servers_of(root)) == 1
    finally:
        harness.send_signal(signal.SIGKILL)  # no clean-up of any kind runs
        harness.wait()
    assert _wait_gone(command) == []
    assert _wait_gone(lambda: _servers_of(root)) == []
