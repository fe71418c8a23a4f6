"""Running the shell commands of one SWE task: a local backend and a Docker backend.

Both backends return a plain `ExecResult` dict from `run()`; failures (a
timeout, too much output, a missing binary) are data, not exceptions, so an
agent loop can show them to the model and go on.

The local backend is **not a security sandbox**. It confines commands by
convention: the working directory is the workspace, HOME and TMPDIR point
inside it, and the environment is rebuilt from scratch (nothing is inherited
from the harness, so no API keys, tokens or cloud credentials leak in). On
top of that, when the machine allows it, a *guard* runs every command in
its own mount and PID namespaces:

* ``bwrap`` (bubblewrap; Debian package ``bubblewrap``), or
* ``unshare`` + ``setpriv`` (util-linux, present on every Debian system; needs
  root or unprivileged user namespaces).

Under a guard the whole file system is read-only except the workspace root,
well-known credential files of the harness user are hidden, the harness's
processes (and their ``/proc/<pid>/environ``) are invisible, capabilities are
dropped so the mounts cannot be undone, and every process a command starts
dies with it. Network access is not restricted (agents may need ``pip``), and
a kernel exploit or a writable socket passed in from outside would defeat
it. Without a guard (``guard="none"``, or ``"auto"`` on a machine that has
neither tool), a command can still write anywhere the harness user can:
only the conventions above hold. `available_guards()` tells which guards work
here; each `ExecResult` records the guard that was used.

When a command is over, and so what its output is, does not depend on timing:
every local command runs under a small reaper init (`_REAPER`) that exits only
once every process the command started has exited, and its output is read to
EOF. Background jobs (``a & b``) are waited for, however busy the machine is;
only the timeout (or an output flood) cuts a command short, and it kills the
whole process group (and PID namespace) at once.

The Docker backend runs commands with ``docker exec`` in a container of the
official SWE-bench image of an instance; the container is the sandbox.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypedDict

from harness.errors import UserError

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_OUTPUT_BYTES = 100_000
GUARDS = ("bwrap", "unshare", "none")
GuardChoice = Literal["auto", "bwrap", "unshare", "none"]

NO_DOCKER_MESSAGE = "docker backend: no Docker engine is reachable (docker info failed); use --backend local"

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

_SECRET_NAME = re.compile(
    r"(^|_)(API_?KEY|KEY|KEYS|TOKEN|TOKENS|SECRET|SECRETS|PASSWORD|PASSWD|PASSPHRASE|CREDENTIALS?|AUTH|COOKIE)(_|$)"
    r"|^(AWS|AZURE|GOOGLE|GCLOUD|GCP|OPENAI|ANTHROPIC|GEMINI|MISTRAL|COHERE|GROQ|DEEPSEEK|OPENROUTER|XAI"
    r"|HF|HUGGINGFACE|HUGGING_FACE|GITHUB|GH|GITLAB|NPM|PYPI|TWINE|DOCKER|SSH|GPG|VAULT|KUBE)_",
    re.IGNORECASE,
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


def is_secret_name(name: str) -> bool:
    """True for environment variable names that look like they hold credentials."""
    return bool(_SECRET_NAME.search(name))


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

# Runs inside `unshare --mount --pid ...` before the command: hides secrets,
# keeps the workspace root writable and makes every other mount read-only, then
# drops all capabilities (so the mounts cannot be undone) and execs the command.
_UNSHARE_SCRIPT = r"""
set -e
root=$1 cwd=$2 masks=$3 setpriv=$4
shift 4
while IFS= read -r m; do
  [ -n "$m" ] || continue
  if [ -d "$m" ]; then mount -t tmpfs -o size=64k,mode=0755 ampbench-mask "$m"
  else mount --bind /dev/null "$m"; fi
done <<< "$masks"
mount --bind "$root" "$root"
while read -r _ _ _ _ mp _; do
  mp=$(printf '%b' "${mp//\\/\\0}")
  case "$mp" in "$root"|"$root"/*) continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done < /proc/self/mountinfo
cd "$cwd"
exec "$setpriv" --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
"""


def _masks_for(root: str) -> list[str]:
    # Never hide a path that contains the workspace or lies inside it.
    out = []
    for m in _secret_paths():
        if root == m or root.startswith(m + os.sep) or m.startswith(root + os.sep):
            continue
        out.append(m)
    return out


def _wrap(guard: str, argv: Sequence[str], *, root: str, cwd: str, masks: Sequence[str]) -> list[str]:
    """The argv that runs `argv` under `guard`, with `root` as the only writable tree."""
    if guard == "none":
        return list(argv)
    if guard == "bwrap":
        bwrap = shutil.which("bwrap") or "bwrap"
        cmd = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        cmd += ["--unshare-pid", "--die-with-parent", "--cap-drop", "ALL"]
        for m in masks:
            cmd += ["--tmpfs", m] if os.path.isdir(m) else ["--ro-bind", "/dev/null", m]
        cmd += ["--bind", root, root, "--chdir", cwd, "--", *argv]
        return cmd
    if guard == "unshare":
        unshare = shutil.which("unshare") or "unshare"
        setpriv = shutil.which("setpriv") or "setpriv"
        bash = shutil.which("bash") or "/bin/bash"
        cmd = [unshare]
        if os.geteuid() != 0:
            cmd += ["--user", "--map-root-user"]
        cmd += ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc"]
        cmd += ["--", bash, "-c", _UNSHARE_SCRIPT, "ampbench-guard", root, cwd, "\n".join(masks), setpriv]
        return [*cmd, *argv]
    raise ValueError(f"unknown guard {guard!r} (choose from auto, {', '.join(GUARDS)})")


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
        # Through the reaper, as every command runs: it must work under the guard too.
        argv = _wrap(guard, _reaped([bash, "-c", probe]), root=root, cwd=root, masks=masks)
        env = {"PATH": _SYSTEM_PATH, "HOME": root, "LANG": "C.UTF-8"}
        try:
            proc = subprocess.run(
                argv, cwd=root, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return (
            proc.returncode == 0
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


def _kill_group(proc: subprocess.Popen[bytes], marker: str | None) -> None:
    """SIGKILL the command's process group, and (without a PID namespace) any process
    that escaped the group but still carries this command's marker variable."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if marker is None:
        return
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


# A tiny init for every local command: it runs the command as its child and exits
# only when every process the command started has exited (it is their reaper: PID 1
# of the guard's PID namespace, or a child subreaper without one, so orphaned
# background jobs are re-parented to it and waited for). It keeps its copies of the
# output pipes open until then, so reading them to EOF *is* waiting for the whole
# command: no grace period, no polling. Its exit status is the command's (128 + N
# when a signal N killed it, as a shell reports it).
_REAPER = r"""
import os, signal, sys
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass
argv = sys.argv[1:]
child = os.fork()
if child == 0:
    # Python ignores SIGPIPE and SIGXFSZ; the command gets the defaults back (`yes | head`).
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, f"ampbench: cannot run {argv[0]}: {exc.strerror}\n".encode())
    os._exit(127)
os.close(0)  # the command's input is the command's: once it is gone, a writer gets EPIPE
status = 0
while True:
    try:
        pid, st = os.wait()
    except ChildProcessError:
        break
    if pid == child:
        status = st
code = os.waitstatus_to_exitcode(status)
# Killed by signal N: 128 + N, as a shell reports it, under every guard alike.
os._exit(128 - code if code < 0 else code)
"""


def _reaped(argv: Sequence[str]) -> list[str]:
    """`argv` run under the reaper init (see `_REAPER`), with the harness's own interpreter."""
    return [sys.executable, "-I", "-S", "-B", "-c", _REAPER, *argv]


KILLED_PIPE_FAILSAFE_S = 5.0
"""After a kill (timeout, output flood), how long to wait for the output pipes to close.
Everything the command started is dead by then and its output is read to EOF; only a
process outside the kill's reach (one handed the pipe over a socket) would hold it open."""


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
    marker: str | None,
) -> _Capture:
    """Run argv in a new session and read its output to EOF, keeping at most
    max_output_bytes per stream.

    The command is over when its output pipes are at EOF and the process has
    exited; for local commands `argv` is wrapped in the reaper init, which holds
    the pipes until every process the command started has exited, so the output
    is complete by construction, however busy the machine is. Only two things cut
    it short, both killing the whole process group (and PID namespace): the
    timeout, and output beyond kill_after_bytes.
    """
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
        return _Capture(
            b"", b"", None, False, False, False, 0, time.monotonic() - start, f"{type(exc).__name__}: {exc}"
        )

    if stdin is not None:
        assert proc.stdin is not None

        def feed(pipe=proc.stdin, data=stdin) -> None:
            try:
                pipe.write(data)
            except (BrokenPipeError, OSError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    pipe.close()

        threading.Thread(target=feed, daemon=True).start()

    streams = [s for s in (proc.stdout, proc.stderr) if s is not None]
    buffers = {s.fileno(): bytearray() for s in streams}
    sel = selectors.DefaultSelector()
    for s in streams:
        sel.register(s.fileno(), selectors.EVENT_READ)
    # The process's exit is one more event to wait for (a pidfd becomes readable when it
    # exits; the zombie stays, so the process group id cannot be reused before the final
    # kill). Without pidfds (old kernels) the exit is waited for after EOF instead.
    pidfd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(proc.pid)
        sel.register(pidfd, selectors.EVENT_READ)
    open_pipes = len(streams)
    exited = pidfd is None  # without a pidfd, the exit is waited for after EOF
    deadline = start + timeout_s
    total = 0
    timed_out = truncated = killed_for_output = False
    killed_at: float | None = None

    def kill() -> None:
        nonlocal killed_at
        _kill_group(proc, marker)
        killed_at = time.monotonic()

    try:
        while open_pipes or not exited:
            now = time.monotonic()
            if killed_at is None and now >= deadline:
                timed_out = True
                kill()
            if killed_at is not None:
                if killed_for_output or now - killed_at > KILLED_PIPE_FAILSAFE_S:
                    break  # the rest of a flood is discarded anyway / the fail-safe
                wait = killed_at + KILLED_PIPE_FAILSAFE_S - now
            else:
                wait = deadline - now
            for key, _ in sel.select(timeout=max(wait, 0.0)):
                fd = key.fd
                if fd == pidfd:
                    sel.unregister(fd)
                    exited = True
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(fd)
                    open_pipes -= 1
                    continue
                total += len(chunk)
                buf = buffers[fd]
                room = max_output_bytes - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(chunk) > room:
                    truncated = True
                if total > kill_after_bytes and not killed_for_output:
                    killed_for_output = True
                    kill()
        if pidfd is None and killed_at is None:
            # EOF without a pidfd: the command closed its output (`exec >/dev/null`)
            # or has ended; it still gets its full time.
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                timed_out = True
                kill()
    finally:
        sel.close()
        if pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(pidfd)
        # Nothing of the command is left after EOF and its exit (the reaper saw to it);
        # this clears up after a kill, and after commands run without the reaper.
        _kill_group(proc, marker)
        for s in streams:
            with contextlib.suppress(OSError):
                s.close()
        try:
            returncode: int | None = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            returncode = None
    keys = list(buffers)
    stdout = bytes(buffers[keys[0]]) if keys else b""
    stderr = bytes(buffers[keys[1]]) if len(keys) > 1 else b""
    return _Capture(
        stdout,
        stderr,
        returncode,
        timed_out,
        truncated,
        killed_for_output,
        total,
        time.monotonic() - start,
        None,
    )


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


# --------------------------------------------------------------------------- local backend


class LocalBackend:
    """Runs commands with bash on this machine, inside one workspace root.

    Every command gets a fresh ``bash -c`` (no state carries over between
    commands except files), stdin from /dev/null, the scrubbed environment of
    `scrubbed_env`, cwd inside the root, and its own process group. A command
    is over when every process it started has exited: background jobs
    (``a & b``) are waited for, so their output is always complete; whatever
    still runs at the timeout is killed with the rest, and the result says the
    command timed out.
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
    ) -> None:
        self.root = os.path.realpath(root)
        self.cwd = os.path.realpath(cwd) if cwd is not None else self.root
        self.home = os.path.realpath(home) if home is not None else self.root
        self.tmpdir = os.path.realpath(tmpdir) if tmpdir is not None else self.root
        for path in (self.cwd, self.home, self.tmpdir):
            self._check_inside(path)
        self.masks = _masks_for(self.root)
        self.guard = resolve_guard(guard, masks=self.masks)
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
        self.env = scrubbed_env(
            home=self.home, tmpdir=self.tmpdir, path_prepend=_python_bin_dirs(), extra=extra_env
        )
        self._bash = shutil.which("bash") or "/bin/bash"

    def _check_inside(self, path: str) -> None:
        if path != self.root and not path.startswith(self.root + os.sep):
            raise ValueError(f"{path} is not inside the workspace root {self.root}")

    def _resolve_cwd(self, cwd: str | os.PathLike[str] | None) -> str:
        if cwd is None:
            return self.cwd
        path = os.path.realpath(os.path.join(self.cwd, cwd))
        self._check_inside(path)
        return path

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
    ) -> _Capture:
        marker = uuid.uuid4().hex if self.guard == "none" else None
        env = dict(self.env)
        if extra_env:
            env.update(extra_env)
        if marker:
            env["AMPBENCH_EXEC_ID"] = marker
        wrapped = _wrap(self.guard, _reaped(argv), root=self.root, cwd=cwd, masks=self.masks)
        return _capture(
            wrapped,
            cwd=cwd,
            env=env,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            kill_after_bytes=_default_kill_after(max_output_bytes),
            stdin=stdin,
            merge_stderr=merge_stderr,
            marker=marker,
        )

    def run(
        self,
        command: str,
        *,
        cwd: str | os.PathLike[str] | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """Run `command` with ``bash -c``; `cwd` is relative to the default cwd and must stay in the root."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        cap_bytes = self.max_output_bytes if max_output_bytes is None else max_output_bytes
        try:
            where = self._resolve_cwd(cwd)
        except ValueError as exc:
            return _failed(str(exc), self.guard)
        cap = self._exec(
            [self._bash, "-c", command],
            cwd=where,
            stdin=None,
            timeout_s=timeout,
            max_output_bytes=cap_bytes,
            merge_stderr=True,
            extra_env=None,
        )
        return _to_result(cap, timeout_s=timeout, max_output_bytes=cap_bytes, guard=self.guard)

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
        cap = self._exec(
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
        )

    def close(self) -> None:
        """Nothing to release: every command's processes are gone when it returns."""


def _to_result(cap: _Capture, *, timeout_s: float, max_output_bytes: int, guard: str) -> ExecResult:
    output = cap.stdout.decode("utf-8", errors="replace")
    notes = _notes(
        cap,
        timeout_s=timeout_s,
        max_output_bytes=max_output_bytes,
        kill_after_bytes=_default_kill_after(max_output_bytes),
    )
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
    )


def run(
    command: str,
    cwd: str | os.PathLike[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    guard: GuardChoice | str = "auto",
) -> ExecResult:
    """Run one command with `cwd` as the workspace root (also HOME and TMPDIR).

    A convenience over `LocalBackend`; a `Workspace` gives a better layout
    (HOME and TMPDIR beside the checkout, so they stay out of the diff).
    """
    return LocalBackend(cwd, guard=guard, timeout_s=timeout_s, max_output_bytes=max_output_bytes).run(command)


# --------------------------------------------------------------------------- docker backend


def docker_image_name(
    instance_id: str, *, namespace: str = "swebench", arch: str = "x86_64", tag: str = "latest"
) -> str:
    """The official SWE-bench evaluation image of an instance, e.g.
    swebench/sweb.eval.x86_64.django_1776_django-11099:latest (Docker forbids '__')."""
    return f"{namespace}/sweb.eval.{arch}.{instance_id.replace('__', '_1776_')}:{tag}".lower()


def _docker_cli_env() -> dict[str, str]:
    # The docker CLI (not the agent) needs its own settings: socket, context, config.
    keep = ("PATH", "HOME", "XDG_RUNTIME_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("DOCKER_")}
    env.setdefault("PATH", _SYSTEM_PATH)
    return env


def docker_engine_available(docker: str = "docker", timeout_s: float = 20.0) -> bool:
    """True when `docker info` reaches an engine."""
    exe = shutil.which(docker)
    if exe is None:
        return False
    try:
        proc = subprocess.run(
            [exe, "info", "--format", "{{.ServerVersion}}"],
            env=_docker_cli_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


# Run inside the container under `timeout -s KILL`: the command's output goes through
# a pipe to `cat`, and this shell exits (so the exec ends) only when `cat` has read
# that pipe to EOF: when every process of the command that holds its output has
# exited. At the timeout `timeout` kills the whole process group, `cat` included.
_DOCKER_RUN = 'bash -c "$1" 2>&1 | cat; exit "${PIPESTATUS[0]}"'


class DockerBackend:
    """Runs commands with ``docker exec`` in one container of a SWE-bench image.

    The container is started on construction (``sleep infinity``) and removed by
    `close()`. The repository is at `workdir` (``/testbed`` in SWE-bench images)
    and the image's conda environment ``testbed`` is activated for every command.
    A command is wrapped in ``timeout -s KILL`` inside the container, which kills
    its whole process group; its output is read to EOF inside the container, so
    background jobs that print are waited for (see `run`); the docker CLI is
    also killed from outside if it outlives the timeout by 10 s.
    """

    name = "docker"

    def __init__(
        self,
        image: str,
        *,
        workdir: str = "/testbed",
        docker: str = "docker",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        env: Mapping[str, str] | None = None,
        activate: str = "source /opt/miniconda3/bin/activate testbed >/dev/null 2>&1 || true",
        pull_timeout_s: float = 1800.0,
    ) -> None:
        if not docker_engine_available(docker):
            raise UserError(NO_DOCKER_MESSAGE)
        self.docker = shutil.which(docker) or docker
        self.image = image
        self.workdir = workdir
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
        self.activate = activate
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
        self._ensure_image(pull_timeout_s)
        self.container = f"ampbench-{uuid.uuid4().hex[:12]}"
        started = self._docker(
            ["run", "-d", "--rm", "--name", self.container, "-w", workdir, image, "sleep", "infinity"],
            timeout_s=300,
        )
        if started.returncode != 0:
            raise UserError(
                f"docker backend: cannot start {image}: {started.stderr.decode(errors='replace').strip()}"
            )

    @classmethod
    def for_instance(
        cls, instance_id: str, *, namespace: str = "swebench", **kwargs: object
    ) -> DockerBackend:
        return cls(docker_image_name(instance_id, namespace=namespace), **kwargs)  # type: ignore[arg-type]

    def _docker(self, args: Sequence[str], *, timeout_s: float) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                [self.docker, *args],
                env=_docker_cli_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, b"", b"docker command timed out")

    def _ensure_image(self, pull_timeout_s: float) -> None:
        if self._docker(["image", "inspect", self.image], timeout_s=60).returncode == 0:
            return
        pulled = self._docker(["pull", self.image], timeout_s=pull_timeout_s)
        if pulled.returncode != 0:
            reason = pulled.stderr.decode(errors="replace").strip().splitlines()
            raise UserError(
                f"docker backend: cannot pull {self.image}: {reason[-1] if reason else 'unknown error'}"
            )

    def _exec_prefix(
        self, cwd: str | None, extra_env: Mapping[str, str] | None, interactive: bool
    ) -> list[str]:
        cmd = [self.docker, "exec"]
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
        cap = _capture(
            argv,
            cwd=os.getcwd(),
            env=_docker_cli_env(),
            timeout_s=timeout + 10,
            max_output_bytes=cap_bytes,
            kill_after_bytes=_default_kill_after(cap_bytes),
            stdin=None,
            merge_stderr=True,
            marker=None,
        )
        # `timeout -s KILL` exits with 137 when it had to kill the command.
        if cap.returncode == 137 and cap.duration_s >= timeout:
            cap.timed_out = True
        return _to_result(cap, timeout_s=timeout, max_output_bytes=cap_bytes, guard="docker")

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
            env=_docker_cli_env(),
            timeout_s=timeout,
            max_output_bytes=cap_bytes,
            kill_after_bytes=_default_kill_after(cap_bytes),
            stdin=stdin,
            merge_stderr=False,
            marker=None,
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
            self._docker(["rm", "-f", container], timeout_s=120)

    def __enter__(self) -> DockerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
