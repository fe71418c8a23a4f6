"""Running the shell commands of one SWE task: a local backend and a Docker backend.

Both backends return a plain `ExecResult` dict from `run()`; failures (a
timeout, too much output, a missing binary, a resource limit) are data, not
exceptions, so an agent loop can show them to the model and go on.

The local backend is **not a security sandbox**. It confines commands by
convention: the working directory is the workspace, HOME and TMPDIR point
inside it, and the environment is rebuilt from scratch (nothing is inherited
from the harness, so no API keys, tokens or cloud credentials leak in). On
top of that, when the machine allows it, a *guard* confines every command with
mount and PID namespaces of its own:

* ``bwrap`` (bubblewrap; Debian package ``bubblewrap``), or
* ``unshare`` + ``setpriv`` (util-linux, present on every Debian system; needs
  root or unprivileged user namespaces).

The guard is set up once per backend (one task run's workspace, one grading
workspace), not once per command: it starts a small command server (see
`suites.swe.session`), and every command of the backend runs as that server's
child, inside the namespaces and mounts the guard made. So its cost, most of a
command's on a small machine, is paid once per task run.

Under a guard the whole file system is read-only except the workspace root,
well-known credential files of the harness user are hidden, the harness's
processes (and their ``/proc/<pid>/environ``) are invisible, capabilities are
dropped so the mounts cannot be undone, and every process a command starts
dies with it. A kernel exploit or a writable socket passed in from outside
would defeat it. Without a guard (``guard="none"``, or ``"auto"`` on a machine
that has neither tool), a command can still write anywhere the harness user
can: only the conventions above hold. `available_guards()` tells which guards
work here; each `ExecResult` records the guard that was used.

Network: by default commands reach the network like the harness does (agents
may need ``pip``), **including services on the host's loopback** (a local model
server, the simulator, ``ampbench proxy``): loopback is not isolated. With
``network=False`` (config ``environment.network: false``) a guard gives the
commands of a backend a network namespace of their own with nothing but its
own loopback interface (``bwrap --unshare-net``, ``unshare --net``): no
internet, no host services. Without a guard the network cannot be cut, and
asking for it is an error.

Resource limits (`suites.swe.limits`, config ``environment.limits``) hold for
every command under every guard, ``none`` included, and for every grading run:
at most 512 processes and threads, 4 GiB of memory over all of a command's
processes, 1 GiB per file (the defaults). As root, processes and memory are
counted by a cgroup of the command's own (``pids.max``, the memory limit;
cgroup v1 or v2), because ``RLIMIT_NPROC`` does not apply to root at all; the
file size by ``RLIMIT_FSIZE``, set by the reaper (below) before the command
starts. Without cgroups (a non-root harness, no writable controller) memory
falls back to ``RLIMIT_AS`` per process, and processes to ``RLIMIT_NPROC``
where it counts the command alone (a non-root harness inside the guard's user
namespace); `limit_enforcement()` says what holds here, and the suite prints a
note for a limit it cannot enforce. A limit the command hit is said in its
output in fixed words (``[ampbench: process limit (512) reached: ...]``). Under
``guard="none"`` as root the command keeps its capabilities and could undo
the limits (raise its rlimits, leave its cgroup): as said, no sandbox.

When a command is over, and so what its output is, does not depend on timing:
every local command runs under a reaper of its own (a child subreaper, see
`suites/swe/session_server.py`) that exits only once every process the command
started has exited, and its output is read to EOF. Background jobs (``a & b``)
are waited for, however busy the machine is; only the timeout (or an output
flood) cuts a command short, and it kills the command's whole process tree
(and cgroup) at once. `LocalBackend.close()` does the same to commands still
running (a cancelled task run) and ends the backend's guard; any command
after it raises `BackendClosed`. If the harness itself is killed (SIGKILL), the
commands die with it: under a guard with its namespaces (a parent-death
signal, ``--die-with-parent``), without one by the server, which sees its
control socket close and kills them; what is left is found by the owner
recorded in the cgroup's name (`suites.swe.limits.remove_stale_cgroups`).

The container backend (``--backend docker``; Docker or Podman, see
`suites.swe.containers`) runs commands with ``exec`` in a container of the
instance's image (the official SWE-bench image, or one ampbench builds: see
`suites.swe.images`); the container is the sandbox. The
same limits apply to the container (``--pids-limit``, ``--memory``,
``--memory-swap``, ``--ulimit fsize``; ``--storage-opt size`` for a disk quota
where the storage driver allows it), ``network=False`` is ``--network none``,
and its cgroup counters tell the limits a command hit.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol, TypedDict

from harness.errors import AmpbenchError, UserError
from harness.redact import is_secret_name
from suites.swe.containers import Engine, cli_env, label_filter, resolve_engine, rlimit_flags
from suites.swe.limits import (
    DEFAULT_LIMITS,
    CommandCgroup,
    ResourceLimits,
    cgroup_support,
    format_size,
    limit_notes,
    owner_alive,
    owner_tag,
)
from suites.swe.session import SERVER, Session, SessionCommand, SessionError

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_OUTPUT_BYTES = 100_000
GUARDS = ("bwrap", "unshare", "none")
GuardChoice = Literal["auto", "bwrap", "unshare", "none"]


# Paths under the harness user's home that commonly hold credentials. Under a
# guard they are hidden (an empty tmpfs over a directory, /dev/null over a file).
SECRET_HOME_PATHS = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".docker",
    ".kube",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".cache/huggingface",
    ".huggingface",
    ".anthropic",
    ".openai",
)

_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecResult(TypedDict):
    """The outcome of one command, as plain data."""

    output: str
    """stdout and stderr interleaved, decoded as UTF-8 (invalid bytes replaced); notes about
    truncation or the timeout are appended as separate lines starting with '[ampbench:'."""
    returncode: int | None
    """Exit status: 128 + N when signal N killed the command (as in a shell), -9 when ampbench
    killed it (timeout, output flood); None when the command never started."""
    timed_out: bool
    truncated: bool
    """Output beyond max_output_bytes was dropped."""
    duration_s: float
    exception: str | None
    """'ExceptionType: message' when the command could not be started, else None."""
    guard: str
    """The confinement used: 'bwrap', 'unshare', 'none' or 'docker'."""
    limits_hit: list[str]
    """Resource limits the command ran into: 'processes', 'memory', 'file_size' (each also said
    in `output`); empty for nearly every command."""


class BackendClosed(AmpbenchError):
    """A command on a backend that was closed (its task run was cancelled or is over)."""


@dataclass
class ProcessResult:
    """Raw result of `exec_argv`: stdout and stderr apart, as bytes (for git plumbing)."""

    stdout: bytes
    stderr: bytes
    returncode: int | None
    timed_out: bool
    truncated: bool
    duration_s: float
    exception: str | None = None
    limits_hit: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.truncated

    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    def error_line(self) -> str:
        """A one-line reason for a failure, for error messages."""
        if self.exception:
            return self.exception
        if self.timed_out:
            return "timed out"
        lines = [ln.strip() for ln in self.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        lines += [ln.strip() for ln in self.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
        for line in lines:
            if line.lower().startswith(("error", "fatal")):
                return line
        return lines[0] if lines else f"exit status {self.returncode}"


class Backend(Protocol):
    """What a scaffold needs to run commands for one task."""

    name: str

    def run(
        self,
        command: str,
        *,
        cwd: str | os.PathLike[str] | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult: ...

    def exec_argv(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> ProcessResult: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- environment


def scrubbed_env(
    *,
    home: str | os.PathLike[str],
    tmpdir: str | os.PathLike[str],
    path_prepend: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The complete environment of an agent command, built from scratch.

    Nothing is inherited from the harness process. Fixed values (locale, time
    zone, no pager, no colour) keep tool output the same on every machine.
    `extra` may not contain secret-looking names (see `is_secret_name`).
    """
    path = ":".join([*path_prepend, _SYSTEM_PATH])
    env = {
        "PATH": path,
        "HOME": os.fspath(home),
        "TMPDIR": os.fspath(tmpdir),
        "USER": "agent",
        "LOGNAME": "agent",
        "SHELL": "/bin/bash",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "PAGER": "cat",
        "GIT_PAGER": "cat",
        "MANPAGER": "cat",
        "GIT_TERMINAL_PROMPT": "0",
        # Agents commit sometimes; give git an identity so that it does not fail.
        "GIT_AUTHOR_NAME": "ampbench agent",
        "GIT_AUTHOR_EMAIL": "agent@ampbench.invalid",
        "GIT_COMMITTER_NAME": "ampbench agent",
        "GIT_COMMITTER_EMAIL": "agent@ampbench.invalid",
        # No __pycache__ litter in the workspace diff; unbuffered so output order is stable.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_PROGRESS_BAR": "off",
    }
    for name, value in (extra or {}).items():
        if is_secret_name(name):
            raise ValueError(f"refusing to pass {name!r} to an agent command: it looks like a credential")
        env[name] = value
    return env


def _python_bin_dirs() -> list[str]:
    # The interpreter running ampbench (a venv's bin first), so that `python -m
    # pytest` inside the workspace finds the same packages as the harness.
    bin_dir = os.path.dirname(sys.executable)
    return [bin_dir] if bin_dir else []


def _secret_paths() -> list[str]:
    home = Path.home()
    paths = [home / rel for rel in SECRET_HOME_PATHS]
    paths.append(Path.cwd() / ".env")
    return [os.fspath(p) for p in paths if p.exists() and not p.is_symlink()]


# --------------------------------------------------------------------------- guards


def _masks_for(root: str) -> list[str]:
    # Never hide a path that contains the workspace or lies inside it.
    out = []
    for m in _secret_paths():
        if root == m or root.startswith(m + os.sep) or m.startswith(root + os.sep):
            continue
        out.append(m)
    return out


def _wrap(
    guard: str,
    argv: Sequence[str],
    *,
    root: str,
    cwd: str,
    masks: Sequence[str],
    network: bool = True,
) -> list[str]:
    """The argv that runs `argv` (the session's server) under `guard`, with `root` as the only
    writable tree (and, with `network` False, no network but a loopback interface of its own).
    The unshare guard's mounts are made by the server's file itself (see its ``--confine``)."""
    if guard == "none":
        if not network:
            raise ValueError("the network cannot be cut without a guard")
        return list(argv)
    if guard == "bwrap":
        bwrap = shutil.which("bwrap") or "bwrap"
        cmd = [bwrap, "--ro-bind", "/", "/", "--proc", "/proc"]
        # bwrap's /dev is a writable tmpfs; the session outlives a command, so only /dev/shm
        # stays writable (the server empties it after each command).
        cmd += ["--dev", "/dev", "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
        # The server is PID 1: it reaps orphans, and signals from commands cannot kill it.
        cmd += ["--unshare-pid", "--as-pid-1", "--die-with-parent", "--cap-drop", "ALL"]
        if not network:
            cmd.append("--unshare-net")  # bwrap brings the new loopback up itself
        for m in masks:
            if os.path.isdir(m):
                cmd += ["--tmpfs", m, "--remount-ro", m]
            else:
                cmd += ["--ro-bind", "/dev/null", m]
        cmd += ["--bind", root, root, "--chdir", cwd, "--", *argv]
        return cmd
    if guard == "unshare":
        unshare = shutil.which("unshare") or "unshare"
        setpriv = shutil.which("setpriv") or "setpriv"
        cmd = [unshare]
        if os.geteuid() != 0:
            cmd += ["--user", "--map-root-user"]
        cmd += ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc"]
        if not network:
            cmd.append("--net")
        # In the new namespaces, as root there: the masks, `root` bound writable, every other
        # mount remounted read-only; then setpriv drops all capabilities and runs `argv`.
        confine = [sys.executable, "-I", "-S", "-B", SERVER, "--confine", root, cwd, "\n".join(masks)]
        confine += ["up" if not network else "-", setpriv, "--"]
        return [*cmd, "--", *confine, *argv]
    raise ValueError(f"unknown guard {guard!r} (choose from auto, {', '.join(GUARDS)})")


def _session(guard: str, *, root: str, masks: Sequence[str], network: bool = True) -> Session:
    """The (not yet started) command server of a workspace, under `guard`."""

    def wrap(argv: list[str]) -> list[str]:
        # A guard dies with the harness by a parent-death signal on its outermost process, and
        # its namespaces with it. Without a guard nothing would take the commands along, so
        # the server is left to see the control socket close, kill them all and exit.
        setpriv = _setpriv_pdeathsig() if guard != "none" else None
        prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        return [*prefix, *_wrap(guard, argv, root=root, cwd=root, masks=masks, network=network)]

    env = {"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8"}
    return Session(wrap, root=root, env=env, scratch=["/dev/shm"] if guard == "bwrap" else [])


@functools.cache
def _guard_works(guard: str, masks: tuple[str, ...]) -> bool:
    """Try the guard once: a file inside the root must be writable, one beside it not."""
    if guard == "none":
        return True
    needed = {"bwrap": ["bwrap"], "unshare": ["unshare", "setpriv"]}[guard]
    if not all(shutil.which(tool) for tool in needed) or not shutil.which("bash"):
        return False
    with tempfile.TemporaryDirectory(prefix="ampbench-guard-probe-") as td:
        root = os.path.join(td, "ws")
        os.mkdir(root)
        probe = "echo ok > inside && { echo no > ../outside; } 2>/dev/null; test -f inside && test ! -e ../outside"
        bash = shutil.which("bash") or "bash"
        env = {"PATH": _SYSTEM_PATH, "HOME": root, "LANG": "C.UTF-8"}
        # Through a session, as every command runs: the server must work under the guard too.
        session = _session(guard, root=root, masks=masks)
        try:
            command = session.run([bash, "-c", probe], cwd=root, env=env, timeout_s=30)
            over = command.wait(30)
            command.kill()
            command.close()
        except (SessionError, OSError):
            return False
        finally:
            session.close()
        return (
            over
            and command.returncode == 0
            and os.path.exists(os.path.join(root, "inside"))
            and not os.path.exists(os.path.join(td, "outside"))
        )


def available_guards() -> dict[str, bool]:
    """Which guards work on this machine (each is tried once per process)."""
    masks = tuple(_secret_paths())
    return {g: _guard_works(g, masks) for g in GUARDS}


def resolve_guard(choice: str, *, masks: Sequence[str] = ()) -> str:
    """Pick the guard for `choice`: 'auto' takes the strongest that works here."""
    if choice == "auto":
        for guard in ("bwrap", "unshare"):
            if _guard_works(guard, tuple(masks)):
                return guard
        return "none"
    if choice not in GUARDS:
        raise UserError(f"unknown guard {choice!r} (choose from auto, {', '.join(GUARDS)})")
    if not _guard_works(choice, tuple(masks)):
        hint = (
            "install it with: apt-get install -y bubblewrap"
            if choice == "bwrap"
            else "it needs util-linux and root or unprivileged user namespaces"
        )
        raise UserError(f"guard {choice!r} does not work on this machine ({hint}); use --guard auto or none")
    return choice


def check_guard(choice: str, *, network: bool = True) -> str:
    """The guard `choice` resolves to here (see `resolve_guard`), checked up front: UserError
    (one line) for an unknown or unavailable guard, or for `network` False without a guard."""
    guard = resolve_guard(choice, masks=tuple(_secret_paths()))
    if not network and guard == "none":
        raise UserError(
            "network: false needs a guard (bwrap or unshare) to cut the network; "
            "guard none cannot (install bubblewrap, or allow the network)"
        )
    return guard


# --------------------------------------------------------------------------- the process runner


@dataclass
class _Capture:
    stdout: bytes
    stderr: bytes
    returncode: int | None
    timed_out: bool
    truncated: bool
    killed_for_output: bool
    total_bytes: int
    duration_s: float
    exception: str | None


def _not_started(started: float, exc: BaseException) -> _Capture:
    """The capture of a command that could not be started: the reason, as data."""
    reason = f"{type(exc).__name__}: {exc}"
    return _Capture(b"", b"", None, False, False, False, 0, time.monotonic() - started, reason)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _kill_marked(marker: str) -> None:
    """SIGKILL every process that carries this command's marker variable: without a PID
    namespace (guard none), what escaped the command's tree when its server died."""
    needle = f"AMPBENCH_EXEC_ID={marker}".encode() + b"\0"
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if needle in fh.read() + b"\0":
                    os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            continue


KILLED_PIPE_FAILSAFE_S = 5.0
"""After a kill (timeout, output flood), how long to wait for the output pipes to close.
Everything the command started is dead by then and its output is read to EOF; only a
process outside the kill's reach (one handed the pipe over a socket) would hold it open."""


@dataclass
class _Pumped:
    buffers: dict[int, bytearray]
    exited: bool
    total: int = 0
    timed_out: bool = False
    truncated: bool = False
    killed_for_output: bool = False
    killed: bool = False


def _pump(
    streams: Sequence[int],
    *,
    exit_fd: int | None,
    exit_readable: Callable[[], bool],
    kill: Callable[[], None],
    deadline: float,
    max_output_bytes: int,
    kill_after_bytes: int,
) -> _Pumped:
    """Read the output `streams` to EOF, keeping at most max_output_bytes per stream, and wait
    for the command's exit: `exit_fd` becomes readable and `exit_readable()` says it was the
    exit (without an `exit_fd`, the caller waits for the exit after EOF).

    The command is over when its output pipes are at EOF and it has exited; a local
    command's reaper holds the pipes until every process the command started has exited,
    so the output is complete by construction, however busy the machine is. Only two things
    cut it short, both calling `kill` (the whole tree): the deadline, and output beyond
    kill_after_bytes (the rest of a flood is not read).
    """
    out = _Pumped({fd: bytearray() for fd in streams}, exited=exit_fd is None)
    sel = selectors.DefaultSelector()
    for fd in streams:
        sel.register(fd, selectors.EVENT_READ)
    if exit_fd is not None:
        sel.register(exit_fd, selectors.EVENT_READ)
    open_pipes = len(streams)
    killed_at: float | None = None

    def kill_now() -> None:
        nonlocal killed_at
        kill()
        killed_at = time.monotonic()

    try:
        while open_pipes or not out.exited:
            now = time.monotonic()
            if killed_at is None and now >= deadline:
                out.timed_out = True
                kill_now()
            if killed_at is not None:
                if out.killed_for_output or now - killed_at > KILLED_PIPE_FAILSAFE_S:
                    break  # the rest of a flood is discarded anyway / the fail-safe
                wait = killed_at + KILLED_PIPE_FAILSAFE_S - now
            else:
                wait = deadline - now
            for key, _ in sel.select(timeout=max(wait, 0.0)):
                fd = key.fd
                if fd == exit_fd:
                    if exit_readable():
                        sel.unregister(fd)
                        out.exited = True
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(fd)
                    open_pipes -= 1
                    continue
                out.total += len(chunk)
                buf = out.buffers[fd]
                room = max_output_bytes - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(chunk) > room:
                    out.truncated = True
                if out.total > kill_after_bytes and not out.killed_for_output:
                    out.killed_for_output = True
                    kill_now()
    finally:
        sel.close()
    out.killed = killed_at is not None
    return out


def _captured(
    pumped: _Pumped,
    streams: Sequence[int],
    returncode: int | None,
    started: float,
    exception: str | None = None,
) -> _Capture:
    stdout = bytes(pumped.buffers[streams[0]]) if streams else b""
    stderr = bytes(pumped.buffers[streams[1]]) if len(streams) > 1 else b""
    return _Capture(
        stdout,
        stderr,
        returncode,
        pumped.timed_out,
        pumped.truncated,
        pumped.killed_for_output,
        pumped.total,
        time.monotonic() - started,
        exception,
    )


def _feed(pipe: int | IO[bytes], data: bytes) -> None:
    """Write a command's stdin from a thread, so that a command that does not read it
    cannot hold up the reading of its output; the pipe is closed when done."""

    def feed() -> None:
        writer = os.fdopen(pipe, "wb") if isinstance(pipe, int) else pipe
        try:
            writer.write(data)
        except (BrokenPipeError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    threading.Thread(target=feed, daemon=True).start()


def _capture(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout_s: float,
    max_output_bytes: int,
    kill_after_bytes: int,
    stdin: bytes | None,
    merge_stderr: bool,
) -> _Capture:
    """Run argv (the docker CLI) in a new session and read its output to EOF, keeping at most
    max_output_bytes per stream (see `_pump`); a kill is SIGKILL to its process group."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except (OSError, ValueError) as exc:
        return _not_started(start, exc)
    if stdin is not None:
        assert proc.stdin is not None
        _feed(proc.stdin, stdin)
    pipes = [s for s in (proc.stdout, proc.stderr) if s is not None]
    streams = [s.fileno() for s in pipes]
    # The process's exit is one more event to wait for (a pidfd becomes readable when it
    # exits; the zombie stays, so the process group id cannot be reused before the final
    # kill). Without pidfds (old kernels) the exit is waited for after EOF instead.
    pidfd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(proc.pid)
    deadline = start + timeout_s
    try:
        pumped = _pump(
            streams,
            exit_fd=pidfd,
            exit_readable=lambda: True,
            kill=lambda: _kill_group(proc),
            deadline=deadline,
            max_output_bytes=max_output_bytes,
            kill_after_bytes=kill_after_bytes,
        )
        if pidfd is None and not pumped.killed:
            # EOF without a pidfd: the command closed its output (`exec >/dev/null`)
            # or has ended; it still gets its full time.
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                pumped.timed_out = True
                _kill_group(proc)
    finally:
        if pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(pidfd)
        _kill_group(proc)
        try:
            returncode: int | None = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            returncode = None
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.close()
    return _captured(pumped, streams, returncode, start)


def _notes(cap: _Capture, *, timeout_s: float, max_output_bytes: int, kill_after_bytes: int) -> str:
    # Deterministic wording: the same command output gives the same notes.
    notes = []
    if cap.killed_for_output:
        notes.append(
            f"[ampbench: output truncated after {max_output_bytes} bytes; the command printed more than "
            f"{kill_after_bytes} bytes and was killed]"
        )
    elif cap.truncated:
        notes.append(
            f"[ampbench: output truncated after {max_output_bytes} bytes; "
            f"{cap.total_bytes - max_output_bytes} more bytes were dropped]"
        )
    if cap.timed_out:
        notes.append(f"[ampbench: the command timed out after {timeout_s:g} s and was killed]")
    return "\n".join(notes)


def _default_kill_after(max_output_bytes: int) -> int:
    # Let a chatty command finish (its side effects matter) while an endless
    # one like `yes` is stopped within milliseconds.
    return max(10 * max_output_bytes, 1 << 20)


# --------------------------------------------------------------------------- resource limits


@dataclass(frozen=True)
class Enforcement:
    """How each resource limit holds for commands on this machine under one guard."""

    mechanisms: dict[str, str]
    """limit name ('processes', 'memory', 'file_size', 'network') -> the mechanism."""
    notes: tuple[str, ...]
    """One line per limit that holds only in part, or not at all, here."""


def _nproc_applies(guard: str) -> bool:
    # RLIMIT_NPROC counts every process of the real uid in the user namespace, and is
    # ignored for root and for CAP_SYS_RESOURCE/CAP_SYS_ADMIN in the initial namespace:
    # it limits one command only in the fresh user namespace a non-root guard makes.
    return os.geteuid() != 0 and guard in ("bwrap", "unshare")


def limit_enforcement(limits: ResourceLimits, guard: str, *, network: bool = True) -> Enforcement:
    """What enforces `limits` for local commands under `guard` here (see the module doc)."""
    support = cgroup_support()
    mechanisms: dict[str, str] = {}
    notes: list[str] = []

    def why(controller: str) -> str:
        return next((p for p in support.problems if controller in p), f"no usable {controller} cgroup")

    if limits.processes is not None:
        if support.has("pids"):
            mechanisms["processes"] = "cgroup pids.max"
        elif _nproc_applies(guard):
            mechanisms["processes"] = "RLIMIT_NPROC in the guard's user namespace"
        else:
            mechanisms["processes"] = "not enforced"
            notes.append(f"process limit ({limits.processes}) not enforced: {why('pids')}")
    if limits.memory_bytes is not None:
        if support.has("memory"):
            mechanisms["memory"] = "cgroup memory limit"
        else:
            mechanisms["memory"] = "RLIMIT_AS per process"
            notes.append(
                f"memory limit ({format_size(limits.memory_bytes)}) holds per process only (RLIMIT_AS, "
                f"address space), and reaching it is not reported: {why('memory')}"
            )
    if limits.file_size_bytes is not None:
        mechanisms["file_size"] = "RLIMIT_FSIZE"
    if limits.disk_bytes is not None:
        notes.append(
            f"disk limit ({format_size(limits.disk_bytes)}) not enforced by the local backend "
            "(only the Docker backend has a disk quota)"
        )
    mechanisms["network"] = "on" if network else f"off ({guard} network namespace)"
    if guard == "none" and os.geteuid() == 0:
        notes.append("guard none as root: a hostile command can undo the limits (it keeps its capabilities)")
    return Enforcement(mechanisms, tuple(notes))


@functools.cache
def _setpriv_pdeathsig() -> str | None:
    """setpriv, when it has --pdeathsig (util-linux >= 2.33)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    try:
        shown = subprocess.run(
            [setpriv, "--help"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return setpriv if b"--pdeathsig" in shown else None


# Exit status of a command killed by SIGXFSZ (as the reaper reports it), and what shells
# and programs print when a write hits RLIMIT_FSIZE.
_XFSZ_STATUS = 128 + signal.SIGXFSZ
_XFSZ_TEXT = (b"File size limit exceeded", b"File too large")


def _file_limit_suspected(cap: _Capture) -> bool:
    return cap.returncode == _XFSZ_STATUS or any(
        text in stream for text in _XFSZ_TEXT for stream in (cap.stdout, cap.stderr)
    )


def _file_at_limit(root: str, limit: int, since: float) -> bool:
    """Whether a regular file under `root` modified since `since` has reached `limit` bytes."""
    stack = [root]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        if st.st_size >= limit and st.st_mtime >= since:
                            return True
                except OSError:
                    continue
    return False


# --------------------------------------------------------------------------- local backend


class LocalBackend:
    """Runs commands with bash on this machine, inside one workspace root.

    Every command gets a fresh ``bash -c`` (no state carries over between
    commands except files), stdin from /dev/null, the scrubbed environment of
    `scrubbed_env`, cwd inside the root, its own process group, its resource
    limits (`limits`, see the module doc) and, where the machine allows it, its
    own cgroup. A command is over when every process it started has exited:
    background jobs (``a & b``) are waited for, so their output is always
    complete; whatever still runs at the timeout is killed with the rest, and
    the result says the command timed out.

    The guard is started at the first command, around the backend's command
    server (`suites.swe.session`), and ended by `close()`: call it (or use the
    workspace that owns the backend as a context manager) when the task run is over.
    """

    name = "local"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        home: str | os.PathLike[str] | None = None,
        tmpdir: str | os.PathLike[str] | None = None,
        guard: GuardChoice | str = "auto",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        extra_env: Mapping[str, str] | None = None,
        limits: ResourceLimits = DEFAULT_LIMITS,
        network: bool = True,
    ) -> None:
        self.root = os.path.realpath(root)
        self.cwd = os.path.realpath(cwd) if cwd is not None else self.root
        self.home = os.path.realpath(home) if home is not None else self.root
        self.tmpdir = os.path.realpath(tmpdir) if tmpdir is not None else self.root
        for path in (self.cwd, self.home, self.tmpdir):
            self._check_inside(path)
        self.masks = _masks_for(self.root)
        self.guard = resolve_guard(guard, masks=self.masks)
        if not network and self.guard == "none":
            raise UserError(
                "network: false needs a guard (bwrap or unshare) to cut the network; "
                "guard none cannot (install bubblewrap, or allow the network)"
            )
        self.network = network
        self.limits = limits
        self.enforcement = limit_enforcement(limits, self.guard, network=network)
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
        self.env = scrubbed_env(
            home=self.home, tmpdir=self.tmpdir, path_prepend=_python_bin_dirs(), extra=extra_env
        )
        self._bash = shutil.which("bash") or "/bin/bash"
        self._cgroups = cgroup_support() if limits.processes or limits.memory_bytes else None
        self._session = _session(self.guard, root=self.root, masks=self.masks, network=network)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running: dict[object, Callable[[], None]] = {}
        """The kill of each command in flight (for `close`)."""
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_inside(self, path: str) -> None:
        if path != self.root and not path.startswith(self.root + os.sep):
            raise ValueError(f"{path} is not inside the workspace root {self.root}")

    def _resolve_cwd(self, cwd: str | os.PathLike[str] | None) -> str:
        if cwd is None:
            return self.cwd
        path = os.path.realpath(os.path.join(self.cwd, cwd))
        self._check_inside(path)
        return path

    def _rlimits(self, cgroup: CommandCgroup | None) -> list[tuple[str, int]]:
        limits = self.limits
        counted = set()
        if cgroup is not None:
            counted = {c for h, _ in cgroup.dirs for c in h.controllers}
        out = []
        if limits.file_size_bytes is not None:
            out.append(("fsize", limits.file_size_bytes))
        if limits.memory_bytes is not None and "memory" not in counted:
            out.append(("as", limits.memory_bytes))
        if limits.processes is not None and "pids" not in counted and _nproc_applies(self.guard):
            out.append(("nproc", limits.processes))
        return out

    def _exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        stdin: bytes | None,
        timeout_s: float,
        max_output_bytes: int,
        merge_stderr: bool,
        extra_env: Mapping[str, str] | None,
    ) -> tuple[_Capture, set[str]]:
        """Run `argv` in the backend's session; the capture and the resource limits it hit."""
        if self._closed:
            raise BackendClosed(f"the workspace {self.root} is closed; nothing was run")
        # The guard starts with the first command; its set-up is not the command's time.
        try:
            self._session.start()
        except SessionError as exc:
            if self._closed:
                raise BackendClosed(f"the workspace {self.root} was closed; nothing was run") from None
            return _not_started(time.monotonic(), exc), set()
        start = time.monotonic()
        try:
            # What a fresh process would have been refused (a cwd the agent removed), the
            # same way: the command did not start.
            os.close(os.open(cwd, os.O_RDONLY | os.O_DIRECTORY))
        except OSError as exc:
            return _not_started(start, exc), set()
        marker = uuid.uuid4().hex if self.guard == "none" else None
        env = dict(self.env)
        if extra_env:
            env.update(extra_env)
        if marker:
            env["AMPBENCH_EXEC_ID"] = marker
        cgroup = None
        if self._cgroups is not None and self._cgroups.hierarchies:
            with contextlib.suppress(OSError):  # then the rlimit fallbacks hold instead
                cgroup = CommandCgroup(self._cgroups, self.limits)
        since = time.time() - 1.0
        hits: set[str] = set()
        try:
            try:
                command = self._session.run(
                    argv,
                    cwd=cwd,
                    env=env,
                    rlimits=self._rlimits(cgroup),
                    stdin=stdin is not None,
                    merge_stderr=merge_stderr,
                    join=cgroup.add if cgroup is not None and cgroup.procs_files else None,
                    timeout_s=timeout_s,
                )
            except SessionError as exc:
                cap = _not_started(start, exc)
            else:
                cap = self._collect(
                    command,
                    start=start,
                    stdin=stdin,
                    timeout_s=timeout_s,
                    max_output_bytes=max_output_bytes,
                    cgroup=cgroup,
                    marker=marker,
                )
            if cgroup is not None:
                hits = cgroup.hits()
        finally:
            if cgroup is not None:
                cgroup.remove()
        if self._closed:
            raise BackendClosed(f"the workspace {self.root} was closed while a command ran")
        limit = self.limits.file_size_bytes
        if limit is not None and _file_limit_suspected(cap) and _file_at_limit(self.root, limit, since):
            hits.add("file_size")
        return cap, hits

    def _collect(
        self,
        command: SessionCommand,
        *,
        start: float,
        stdin: bytes | None,
        timeout_s: float,
        max_output_bytes: int,
        cgroup: CommandCgroup | None,
        marker: str | None,
    ) -> _Capture:
        """Read a started command's output to EOF and its exit status (see `_pump`)."""

        def kill() -> None:
            command.kill()
            if cgroup is not None:
                cgroup.kill()
            if marker is not None:
                _kill_marked(marker)

        key = object()
        with self._lock:
            self._running[key] = kill
            closing = self._closed
        if closing:  # closed while it was starting
            kill()
        if stdin is not None and command.stdin is not None:
            _feed(command.stdin, stdin)
            command.stdin = None
        streams = [command.stdout] + ([command.stderr] if command.stderr is not None else [])
        try:
            pumped = _pump(
                streams,
                exit_fd=command.fileno(),
                exit_readable=command.read_exit,
                kill=kill,
                deadline=start + timeout_s,
                max_output_bytes=max_output_bytes,
                kill_after_bytes=_default_kill_after(max_output_bytes),
            )
            if not command.exited:
                # Broken off after a kill (a flood, the fail-safe): the status follows the kill.
                kill()
                command.wait(10.0)
            exception = None
            if command.returncode is None and not pumped.killed and not self._closed:
                exception = f"{SessionError.__name__}: the session ended while the command ran"
            return _captured(pumped, streams, command.returncode, start, exception)
        finally:
            command.close()
            with self._lock:
                self._running.pop(key, None)
                self._idle.notify_all()

    def run(
        self,
        command: str,
        *,
        cwd: str | os.PathLike[str] | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """Run `command` with ``bash -c``; `cwd` is relative to the default cwd and must stay in the root.
        Raises `BackendClosed` after `close()`."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        cap_bytes = self.max_output_bytes if max_output_bytes is None else max_output_bytes
        try:
            where = self._resolve_cwd(cwd)
        except ValueError as exc:
            return _failed(str(exc), self.guard)
        cap, hits = self._exec(
            [self._bash, "-c", command],
            cwd=where,
            stdin=None,
            timeout_s=timeout,
            max_output_bytes=cap_bytes,
            merge_stderr=True,
            extra_env=None,
        )
        return _to_result(
            cap,
            timeout_s=timeout,
            max_output_bytes=cap_bytes,
            guard=self.guard,
            hits=hits,
            limits=self.limits,
        )

    def exec_argv(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> ProcessResult:
        """Run a program without a shell, stdout and stderr apart (used for git plumbing)."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        cap_bytes = 64 << 20 if max_output_bytes is None else max_output_bytes
        cap, hits = self._exec(
            argv,
            cwd=self._resolve_cwd(cwd),
            stdin=stdin,
            timeout_s=timeout,
            max_output_bytes=cap_bytes,
            merge_stderr=False,
            extra_env=extra_env,
        )
        return ProcessResult(
            cap.stdout,
            cap.stderr,
            cap.returncode,
            cap.timed_out,
            cap.truncated,
            cap.duration_s,
            cap.exception,
            sorted(hits),
        )

    def close(self, *, wait_s: float = 20.0) -> None:
        """Kill every command still running (a cancelled task run) with all its processes, end
        the guard, and wait up to `wait_s` for all of it to be gone (0: do not wait, a later
        `close()` does); later commands raise `BackendClosed`. Idempotent."""
        with self._lock:
            self._closed = True
            running = list(self._running.values())
        for kill in running:
            kill()
        if wait_s > 0:
            with self._lock:
                self._idle.wait_for(lambda: not self._running, timeout=wait_s)
        # The server kills whatever is left and exits once it sees the control socket close.
        self._session.close(wait_s=wait_s)


def _to_result(
    cap: _Capture,
    *,
    timeout_s: float,
    max_output_bytes: int,
    guard: str,
    hits: set[str] | frozenset[str] = frozenset(),
    limits: ResourceLimits | None = None,
) -> ExecResult:
    output = cap.stdout.decode("utf-8", errors="replace")
    notes = _notes(
        cap,
        timeout_s=timeout_s,
        max_output_bytes=max_output_bytes,
        kill_after_bytes=_default_kill_after(max_output_bytes),
    )
    if hits and limits is not None:
        notes = "\n".join([*([notes] if notes else []), *limit_notes(hits, limits)])
    if notes:
        if output and not output.endswith("\n"):
            output += "\n"
        output += notes
    return ExecResult(
        output=output,
        returncode=cap.returncode,
        timed_out=cap.timed_out,
        truncated=cap.truncated,
        duration_s=round(cap.duration_s, 3),
        exception=cap.exception,
        guard=guard,
        limits_hit=sorted(hits),
    )


def _failed(message: str, guard: str) -> ExecResult:
    return ExecResult(
        output="",
        returncode=None,
        timed_out=False,
        truncated=False,
        duration_s=0.0,
        exception=f"ValueError: {message}",
        guard=guard,
        limits_hit=[],
    )


def run(
    command: str,
    cwd: str | os.PathLike[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    guard: GuardChoice | str = "auto",
    limits: ResourceLimits = DEFAULT_LIMITS,
) -> ExecResult:
    """Run one command with `cwd` as the workspace root (also HOME and TMPDIR).

    A convenience over `LocalBackend`; a `Workspace` gives a better layout
    (HOME and TMPDIR beside the checkout, so they stay out of the diff).
    """
    backend = LocalBackend(
        cwd, guard=guard, timeout_s=timeout_s, max_output_bytes=max_output_bytes, limits=limits
    )
    try:
        return backend.run(command)
    finally:
        backend.close()


# --------------------------------------------------------------------------- docker backend


def docker_image_name(
    instance_id: str, *, namespace: str = "swebench", arch: str = "x86_64", tag: str = "latest"
) -> str:
    """The official SWE-bench evaluation image of an instance, e.g.
    swebench/sweb.eval.x86_64.django_1776_django-11099:latest (Docker forbids '__')."""
    return f"{namespace}/sweb.eval.{arch}.{instance_id.replace('__', '_1776_')}:{tag}".lower()


# Run inside the container under `timeout -s KILL`: the command's output goes through
# a pipe to `cat`, and this shell exits (so the exec ends) only when `cat` has read
# that pipe to EOF: when every process of the command that holds its output has
# exited. At the timeout `timeout` kills the whole process group, `cat` included.
# Around the command, the container's cgroup counters (forks refused at the pids limit,
# processes killed at the memory limit; v2 or v1 layout) go to stderr, apart from the
# command's output, so that a limit the command hit can be said.
_DOCKER_RUN = (
    "_c() { for f in pids:/sys/fs/cgroup/pids.events memory:/sys/fs/cgroup/memory.events "
    "pids:/sys/fs/cgroup/pids/pids.events memory:/sys/fs/cgroup/memory/memory.oom_control; do "
    'n=${f%%:*}; f=${f#*:}; [ -r "$f" ] && while read -r k v; do case "$n:$k" in '
    'pids:max|memory:oom_kill) printf "%s=%s " "$n" "$v" ;; esac; done < "$f"; done; }; '
    'b=$(_c); bash -c "$1" 2>&1 | cat; s=${PIPESTATUS[0]}; '
    'printf "ampbench-limits: %s| %s\\n" "$b" "$(_c)" >&2; exit "$s"'
)
_DOCKER_COUNTERS = re.compile(rb"^ampbench-limits: (.*)\| (.*)$", re.MULTILINE)


def _docker_hits(stderr: bytes) -> tuple[set[str], bytes]:
    """The limits a command hit, from the counters `_DOCKER_RUN` printed; and the rest of stderr."""
    hits: set[str] = set()
    found = list(_DOCKER_COUNTERS.finditer(stderr))
    if not found:
        return hits, stderr
    match = found[-1]

    def parse(text: bytes) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in text.split():
            name, _, value = item.partition(b"=")
            with contextlib.suppress(ValueError):
                out[name.decode()] = out.get(name.decode(), 0) + int(value)
        return out

    before, after = parse(match.group(1)), parse(match.group(2))
    if after.get("pids", 0) > before.get("pids", 0):
        hits.add("processes")
    if after.get("memory", 0) > before.get("memory", 0):
        hits.add("memory")
    rest = stderr[: match.start()] + stderr[match.end() :].lstrip(b"\n")
    return hits, rest


def docker_limit_flags(limits: ResourceLimits, *, network: bool = True) -> list[str]:
    """`docker run` options for `limits` (and no network when `network` is False)."""
    flags = []
    if limits.processes is not None:
        flags.append(f"--pids-limit={limits.processes}")
    if limits.memory_bytes is not None:
        # --memory-swap equal to --memory: no swap on top.
        flags += [f"--memory={limits.memory_bytes}", f"--memory-swap={limits.memory_bytes}"]
    if limits.file_size_bytes is not None:
        # Docker passes ulimit values to setrlimit as they are: bytes for fsize.
        flags.append(f"--ulimit=fsize={limits.file_size_bytes}:{limits.file_size_bytes}")
    if limits.disk_bytes is not None:
        flags.append(f"--storage-opt=size={limits.disk_bytes}")
    flags += rlimit_flags(limits.processes)
    if not network:
        flags.append("--network=none")
    return flags


OWNER_LABEL = "ampbench.owner"
"""Label of every container ampbench starts: '<host>/<owner_tag>', for `remove_stale_containers`."""


def _host() -> str:
    return os.uname().nodename


def remove_stale_containers(engine: Engine | str | None = None) -> list[str]:
    """Remove the containers of ampbench processes on this host that are gone (SIGKILL)."""
    try:
        engine = engine if isinstance(engine, Engine) else resolve_engine(engine)
    except UserError:
        return []
    listed = engine.call(
        ["ps", "-a", *label_filter(OWNER_LABEL), "--format", f'{{{{.ID}}}} {{{{.Label "{OWNER_LABEL}"}}}}'],
        timeout_s=60,
    )
    stale = []
    for line in listed.stdout.decode(errors="replace").splitlines():
        cid, _, owner = line.strip().partition(" ")
        host, _, tag = owner.partition("/")
        if cid and host == _host() and tag and not owner_alive(tag):
            stale.append(cid)
    if stale:
        engine.call(["rm", "-f", *stale], timeout_s=300)
    return stale


class DockerBackend:
    """Runs commands with ``exec`` in one container (Docker or Podman, `suites.swe.containers`).

    The container is started on construction (``sleep infinity``) from an image
    that must exist already (`suites.swe.images` pulls or builds it) and removed by
    `close()`. The repository is at `workdir` (``/testbed`` in SWE-bench images);
    the official images' conda environment ``testbed`` is activated for every
    command, images built by ampbench have their virtualenv first on PATH. A
    command is wrapped in ``timeout -s KILL`` inside the container, which kills
    its whole process group; its output is read to EOF inside the container, so
    background jobs that print are waited for (see `run`); the engine CLI is
    also killed from outside if it outlives the timeout by 10 s.
    """

    name = "docker"

    def __init__(
        self,
        image: str,
        *,
        workdir: str = "/testbed",
        engine: Engine | str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        env: Mapping[str, str] | None = None,
        activate: str = "source /opt/miniconda3/bin/activate testbed >/dev/null 2>&1 || true",
        limits: ResourceLimits = DEFAULT_LIMITS,
        network: bool = True,
        run_flags: Sequence[str] = (),
    ) -> None:
        self.engine = engine if isinstance(engine, Engine) else resolve_engine(engine)
        self.image = image
        self.workdir = workdir
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
        self.activate = activate
        self.limits = limits
        self.network = network
        self.env = {
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "TERM": "dumb",
            "NO_COLOR": "1",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
            "PIP_PROGRESS_BAR": "off",
        }
        for name, value in (env or {}).items():
            if is_secret_name(name):
                raise ValueError(f"refusing to pass {name!r} into the container: it looks like a credential")
            self.env[name] = value
        if not self.engine.image_exists(image):
            raise UserError(f"{self.engine.name} backend: no image {image} here (build or pull it first)")
        self.container = f"ampbench-{uuid.uuid4().hex[:12]}"
        started = self.engine.call(
            [
                "run",
                "-d",
                "--rm",
                "--name",
                self.container,
                f"--label={OWNER_LABEL}={_host()}/{owner_tag()}",
                *docker_limit_flags(limits, network=network),
                *run_flags,
                "-w",
                workdir,
                image,
                "sleep",
                "infinity",
            ],
            timeout_s=300,
        )
        if started.returncode != 0:
            reason = started.stderr.decode(errors="replace").strip()
            if limits.disk_bytes is not None and "storage-opt" in reason:
                reason += (
                    " (the disk limit needs a storage driver with quotas; set environment.limits.disk: null)"
                )
            self.container = None
            raise UserError(f"{self.engine.name} backend: cannot start {image}: {reason}")

    def _exec_prefix(
        self, cwd: str | None, extra_env: Mapping[str, str] | None, interactive: bool
    ) -> list[str]:
        cmd = self.engine.command("exec")
        if interactive:
            cmd.append("-i")
        cmd += ["-w", cwd or self.workdir]
        for name, value in {**self.env, **(extra_env or {})}.items():
            cmd += ["-e", f"{name}={value}"]
        cmd.append(self.container)
        return cmd

    def run(
        self,
        command: str,
        *,
        cwd: str | os.PathLike[str] | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        cap_bytes = self.max_output_bytes if max_output_bytes is None else max_output_bytes
        script = f"{self.activate}\n{command}"
        # Background jobs that print are waited for (see _DOCKER_RUN); ones that
        # do not are left running in the container, as `docker exec` leaves them.
        argv = [
            *self._exec_prefix(os.fspath(cwd) if cwd else None, None, False),
            "timeout",
            "-s",
            "KILL",
            f"{timeout:g}",
            "bash",
            "-c",
            _DOCKER_RUN,
            "ampbench",
            script,
        ]
        since = int(time.time()) - 1
        cap = _capture(
            argv,
            cwd=os.getcwd(),
            env=cli_env(),
            timeout_s=timeout + 10,
            max_output_bytes=cap_bytes,
            kill_after_bytes=_default_kill_after(cap_bytes),
            stdin=None,
            merge_stderr=False,
        )
        # The command's output (stderr included) is on stdout; the docker CLI's own errors
        # and the limit counters on stderr.
        hits, rest = _docker_hits(cap.stderr)
        if rest:
            cap.stdout += rest
        # `timeout -s KILL` exits with 137 when it had to kill the command.
        if cap.returncode == 137 and cap.duration_s >= timeout:
            cap.timed_out = True
        limit = self.limits.file_size_bytes
        if limit is not None and _file_limit_suspected(cap) and self._file_at_limit(limit, since):
            hits.add("file_size")
        return _to_result(
            cap, timeout_s=timeout, max_output_bytes=cap_bytes, guard="docker", hits=hits, limits=self.limits
        )

    def _file_at_limit(self, limit: int, since: int) -> bool:
        found = self.exec_argv(
            [
                *("find", self.workdir, "/tmp", "/root", "-xdev", "-type", "f"),
                *("-size", f"+{limit - 1}c", "-newermt", f"@{since}", "-print", "-quit"),
            ],
            timeout_s=120,
        )
        return bool(found.stdout.strip())

    def exec_argv(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> ProcessResult:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        cap_bytes = 64 << 20 if max_output_bytes is None else max_output_bytes
        full = [*self._exec_prefix(os.fspath(cwd) if cwd else None, extra_env, stdin is not None), *argv]
        cap = _capture(
            full,
            cwd=os.getcwd(),
            env=cli_env(),
            timeout_s=timeout,
            max_output_bytes=cap_bytes,
            kill_after_bytes=_default_kill_after(cap_bytes),
            stdin=stdin,
            merge_stderr=False,
        )
        return ProcessResult(
            cap.stdout,
            cap.stderr,
            cap.returncode,
            cap.timed_out,
            cap.truncated,
            cap.duration_s,
            cap.exception,
        )

    def close(self) -> None:
        """Remove the container (idempotent)."""
        container, self.container = getattr(self, "container", None), None
        if container:
            self.engine.call(["rm", "-f", container], timeout_s=120)

    def __enter__(self) -> DockerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
