"""One confined session per task run: the guard is set up once, and every command runs inside it.

Why: setting up a guard (new namespaces, every mount remounted read-only, the
secret paths masked) costs more than most agent commands themselves: about a
third of a second under ``unshare`` on a small machine, against a few
milliseconds for ``echo``. A task run sends dozens of commands, and git
plumbing and grading more. So a `LocalBackend` starts the guard once, around a
small command server (`suites/swe/session_server.py`, see its doc for the
protocol), and sends it every command of its lifetime: the agent's commands,
the git plumbing on the checkout, the test runs of grading.

What the guard gave each command still holds for each command, because every
command is a child of the server and inherits its confinement: the read-only
file system except the workspace root, the masked secret paths, no
capabilities, no harness processes in sight, no network when it is off. Per
command, as before: a fresh ``bash -c`` with the environment, cwd and resource
limits the backend sends; its own cgroup (the harness moves the command's
reaper into it before the command starts); a reaper that holds the output until
every process of the command has exited; a kill of its whole tree at the
timeout. What the commands of one session share besides the workspace is the
guard's namespaces: one PID namespace (a command never sees the processes of an
earlier one: they are dead), one network namespace when the network is off,
and bwrap's private ``/dev/shm``, which the server empties after each command.

The session dies with the harness: the harness's end of the control socket
closes when it dies (the server then kills every command and exits), and the
guard gets a parent-death signal bound to a thread that lives as long as the
session (a parent-death signal fires when the *thread* that started a process
exits, so the task run's worker thread, which may come and go, must not start
it).
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.errors import AmpbenchError

SERVER = os.fspath(Path(__file__).with_name("session_server.py"))
START_TIMEOUT_S = 120.0
"""How long the guard may take to start the server (namespaces, mounts) on a loaded machine."""

_LENGTH = struct.Struct("!Q")
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_STDERR_KEPT = 4096


class SessionError(AmpbenchError):
    """The confined session could not start, or ended under a command."""


class SessionCommand:
    """One command running in a session: its output pipes and its channel to the server.

    The channel becomes readable when the command is over (its reaper has exited); `read_exit`
    then reads the exit status. All descriptors are this object's; `close` releases them."""

    def __init__(
        self, session: Session, command_id: int, channel: socket.socket, stdout: int, stderr: int | None
    ) -> None:
        self._session = session
        self._id = command_id
        self._channel = channel
        self.stdout = stdout
        self.stderr = stderr
        self._fds = [stdout] if stderr is None else [stdout, stderr]
        self.stdin: int | None = None
        """The write end of the command's stdin (when it has one to feed); whoever takes it
        over (the feeder) sets this to None and closes it."""
        self.exited = False
        self.returncode: int | None = None
        """As `os.waitstatus_to_exitcode` gives the reaper's status; None when the session ended
        before the command did."""
        self._status = b""

    def fileno(self) -> int:
        return self._channel.fileno()

    def read_exit(self) -> bool:
        """Read what the channel holds (call when it is readable); True once the command is over."""
        try:
            data = self._channel.recv(256)
        except OSError:
            data = b""
        if data:
            self._status += data
            if b"\n" not in self._status:
                return False
            verb, _, value = self._status.split(b"\n", 1)[0].partition(b" ")
            if verb == b"exit":
                try:
                    self.returncode = int(value)
                except ValueError:
                    self.returncode = None
        self.exited = True
        return True

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the command to be over; True when it is."""
        deadline = time.monotonic() + timeout_s
        poller = select.poll()
        poller.register(self._channel, select.POLLIN)
        while not self.exited:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if poller.poll(left * 1000):
                self.read_exit()
        return True

    def kill(self) -> None:
        """Ask the server to kill the command's whole tree (a no-op once it is over)."""
        if not self.exited:
            # A closed or dead session has killed it already (the server does at EOF).
            with contextlib.suppress(SessionError):
                self._session._send(f"kill {self._id}".encode())

    def close(self) -> None:
        """Release the descriptors (idempotent)."""
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.stdin is not None:
            with contextlib.suppress(OSError):
                os.close(self.stdin)
            self.stdin = None
        self._channel.close()


class Session:
    """The command server of one workspace, started under its guard at the first command.

    `wrap` turns the server's argv into the argv that runs it under the guard. A server that
    died (it should not) is started again at the next command; `close` ends it for good.
    """

    def __init__(
        self,
        wrap: Callable[[list[str]], list[str]],
        *,
        root: str,
        env: Mapping[str, str],
        scratch: Sequence[str] = (),
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self._wrap = wrap
        self.root = root
        self._env = dict(env)
        self._scratch = list(scratch)
        self._start_timeout_s = start_timeout_s
        # Starting takes a while (the guard's set-up); closing and killing must not wait for it.
        self._starting = threading.Lock()
        self._lock = threading.Lock()
        """Guards `_control` and `_closed`; held only briefly."""
        self._control: socket.socket | None = None
        self._launch: _Launch | None = None
        self._owner: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._closed = False
        self.starts = 0
        """How many servers this session started (1 in a healthy task run)."""

    @property
    def pid(self) -> int | None:
        """The pid of the guard process (the outermost process of the session), when started."""
        proc = self._launch.proc if self._launch is not None else None
        return proc.pid if proc is not None else None

    def _start(self) -> None:
        """Start the server under the guard and wait for its `ready` (with `_starting` held)."""
        harness_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = self._wrap(
            [sys.executable, "-I", "-S", "-B", SERVER, str(server_end.fileno()), self.root, *self._scratch]
        )
        launch = _Launch(argv, self.root, self._env, server_end.fileno())
        # The thread holds no reference to the session, so that a session nobody closed is
        # still collected (and its server, seeing EOF, exits).
        owner = threading.Thread(target=launch.own, name="ampbench-session", daemon=True)
        owner.start()
        launch.launched.wait()
        server_end.close()
        if launch.proc is None:
            harness_end.close()
            raise SessionError(f"cannot start the guard: {launch.error}")
        self._launch, self._owner = launch, owner
        self.starts += 1
        harness_end.settimeout(self._start_timeout_s)
        try:
            hello = harness_end.recv(16)
        except OSError:
            hello = b""
        if hello != b"ready":
            harness_end.close()
            self._stop(wait_s=5.0)
            reason = launch.stderr.decode(errors="replace").strip().splitlines()
            raise SessionError(f"the guard did not start: {reason[-1] if reason else 'no reason given'}")
        harness_end.settimeout(None)
        with self._lock:
            closed = self._closed
            if not closed:
                self._control = harness_end
        if closed:  # closed while it was starting: the server sees EOF and exits
            harness_end.close()
            raise SessionError("the session is closed")

    def _alive(self) -> bool:
        proc = self._launch.proc if self._launch is not None else None
        return self._control is not None and proc is not None and proc.poll() is None

    def __del__(self) -> None:
        # A session nobody closed: its server sees EOF, kills what runs, and exits.
        control = getattr(self, "_control", None)
        if control is not None:
            control.close()

    def _send(self, message: bytes, fds: Sequence[int] = ()) -> None:
        with self._lock:
            control = self._control
            if control is None:
                raise SessionError("the session is closed")
            try:
                socket.send_fds(control, [message], list(fds))
            except OSError as exc:
                # The server is gone: the next command starts another one.
                control.close()
                self._control = None
                raise SessionError(f"the session ended ({exc.strerror or exc})") from None

    def start(self) -> None:
        """Start the server unless it runs (idempotent). Raises SessionError when the guard
        cannot start, or the session is closed."""
        with self._starting:
            with self._lock:
                if self._closed:
                    raise SessionError("the session is closed")
                alive = self._alive()
                if not alive and self._control is not None:
                    self._control.close()
                    self._control = None
            if not alive:
                self._start()

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        rlimits: Sequence[tuple[str, int]] = (),
        stdin: bool = False,
        merge_stderr: bool = True,
        join: Callable[[int], None] | None = None,
        timeout_s: float = 60.0,
    ) -> SessionCommand:
        """Start `argv` in the session (starting the server first if need be).

        `stdin`: give the command a pipe to feed (`SessionCommand.stdin`), else /dev/null.
        `join(pid)` moves the command's reaper (host pid) into the command's cgroup before the
        command starts; an OSError from it fails the command (status 125), as the cgroup
        could not hold it. Raises SessionError when the session cannot run it.
        """
        self.start()
        command_id = next(self._ids)
        channel, server_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # The kernel attaches the sender's credentials (its pid as seen from here) to what
        # the reaper writes: that is how the harness learns which process to put in the cgroup.
        channel.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        out_r, out_w = os.pipe()
        err_r, err_w = (None, out_w) if merge_stderr else os.pipe()
        if stdin:
            in_r, in_w = os.pipe()
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY), None
        command = SessionCommand(self, command_id, channel, out_r, err_r)
        command.stdin = in_w
        try:
            self._send(f"run {command_id}".encode(), [server_channel.fileno(), in_r, out_w, err_w])
        except BaseException:
            command.close()
            raise
        finally:
            # The server and the reaper have their copies now; ours would keep the pipes open.
            server_channel.close()
            for fd in {in_r, out_w, err_w}:
                os.close(fd)
        request = {
            "argv": list(argv),
            "cwd": cwd,
            "env": dict(env),
            "rlimits": [list(item) for item in rlimits],
            "join": join is not None,
        }
        body = marshal.dumps(request)
        try:
            channel.sendall(_LENGTH.pack(len(body)) + body)
            if join is not None:
                self._join(channel, join, timeout_s)
        except OSError:
            pass  # the reaper is gone; its channel says so (EOF) and its output tells why
        return command

    @staticmethod
    def _join(channel: socket.socket, join: Callable[[int], None], timeout_s: float) -> None:
        channel.settimeout(max(timeout_s, 1.0))
        try:
            message, ancillary, _, _ = channel.recvmsg(1, socket.CMSG_SPACE(_CREDENTIALS.size))
            if message != b"P":
                return
            pid = next(
                _CREDENTIALS.unpack(data[: _CREDENTIALS.size])[0]
                for level, kind, data in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
            )
            try:
                join(pid)
            except OSError:
                channel.sendall(b"N")
                return
            channel.sendall(b"G")
        finally:
            channel.settimeout(None)

    def close(self, wait_s: float = 10.0) -> None:
        """End the session: the server kills what still runs and exits. Waits up to `wait_s`
        for that, then kills the guard. Idempotent."""
        with self._lock:
            self._closed = True
            control, self._control = self._control, None
        if control is not None:
            control.close()
        if wait_s > 0:
            self._stop(wait_s)

    def _stop(self, wait_s: float) -> None:
        proc = self._launch.proc if self._launch is not None else None
        owner = self._owner
        if proc is None:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if owner is not None:
            owner.join(timeout=max(wait_s, 1.0))


class _Launch:
    """Starting the guard from the session's own thread, and what came of it."""

    def __init__(self, argv: list[str], cwd: str, env: Mapping[str, str], keep_fd: int) -> None:
        self.argv, self.cwd, self.env, self.keep_fd = argv, cwd, dict(env), keep_fd
        self.launched = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.error = ""
        self.stderr = b""
        """The tail of the guard's stderr once it has exited (for error messages)."""

    def own(self) -> None:
        """Start the guard (its parent-death signal is bound to this thread), keep the tail of
        its stderr, reap it; return when it has exited."""
        try:
            proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(self.keep_fd,),
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.launched.set()
            return
        self.proc = proc
        self.launched.set()
        assert proc.stderr is not None
        kept = b""
        while chunk := proc.stderr.read1(65536):
            kept = (kept + chunk)[-_STDERR_KEPT:]
        proc.stderr.close()
        proc.wait()
        self.stderr = kept
