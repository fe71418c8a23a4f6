"""The command server of a confined session: started once per task run, inside the guard.

`suites.swe.session` runs this file as a program (``python -I -S -B
session_server.py FD ROOT [SCRATCH...]``) under the guard, so that the guard's
namespaces, read-only mounts and masks are set up once per task run rather than
once per command. Only the standard library: it runs with the harness's
interpreter but none of its packages.

Each command the harness sends gets what the per-command wrapper gave it:

* a *reaper*, forked from this server: a child subreaper in a session of its
  own that exits only once every process the command started has exited, and
  holds the command's output pipes until then, so that reading them to EOF is
  waiting for the whole command, however busy the machine is;
* the command, forked by the reaper: a process group of its own, the stdin and
  output pipes the harness passed, the cwd, environment and resource limits the
  harness sent, SIGPIPE and SIGXFSZ back to their defaults.

Protocol. FD is this end of a SOCK_SEQPACKET pair; the harness holds the other.
The server sends ``ready`` once it runs. The harness sends ``run ID`` with four
descriptors: a stream socket (the command's *channel*), stdin, stdout and
stderr; then, on the channel, an 8-byte length and the request (a dict: argv,
cwd, env, rlimits, join) in `marshal` format: both ends run the same
interpreter, and marshal needs no import (every session start pays for its
imports). With ``join`` set the reaper writes ``P`` on the channel (the harness
reads its pid from the credentials the kernel attaches and moves it into the
command's cgroup) and waits for ``G`` before it starts the command.
When the reaper has exited, the server writes ``exit N\\n`` on the channel (N as
`os.waitstatus_to_exitcode` gives it: negative when a signal killed the reaper)
and closes it. ``kill ID`` kills the command's whole tree. EOF on FD (the
harness closed the session, or died) kills every command, and the server exits.

Under the ``unshare`` guard the same file first runs as ``session_server.py
--confine ROOT CWD MASKS LO SETPRIV -- SERVER-ARGV`` in the fresh namespaces (as
root there): it hides the masks, keeps ROOT writable and remounts every other
mount read-only with mount(2) calls (one process, where ``mount(8)`` per mount
point cost a fork and an exec each), then execs ``setpriv`` to drop every
capability, which execs the server. `bwrap` does all of that itself.

Why the server is hard to disturb from a command: under a guard it is PID 1 of
the session's PID namespace, which ignores signals from inside it; it and the
reapers are not dumpable, so commands (same uid, no capabilities) cannot trace
them or open their descriptors through /proc.
"""

from __future__ import annotations

import contextlib
import ctypes
import marshal
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
LENGTH = struct.Struct("!Q")

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _say(text: str) -> None:
    """A line on fd 2: the command's stderr, in a reaper and in a command."""
    with contextlib.suppress(OSError):
        os.write(2, f"ampbench: {text}\n".encode())


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the harness closed the channel")
        data += chunk
    return bytes(data)


# --------------------------------------------------------------------------- confining (unshare)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_RELATIME = 1024, 2048, 4096, 1 << 21
# Flags a read-only remount must keep: in a user namespace the kernel refuses to clear
# them (they are locked), and they are the mount's own business anyway.
_KEPT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    def c(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    if _libc.mount(c(source), c(target), c(fstype), flags, c(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), target)


def _unescape(field: bytes) -> str:
    """A mount point as /proc/self/mountinfo writes it (space, tab, newline, backslash as \\ooo)."""
    out = bytearray()
    i = 0
    while i < len(field):
        if field[i : i + 1] == b"\\" and field[i + 1 : i + 4].isdigit():
            out.append(int(field[i + 1 : i + 4], 8))
            i += 4
        else:
            out += field[i : i + 1]
            i += 1
    return os.fsdecode(bytes(out))


def _confine(root: str, cwd: str, masks: list[str], loopback_up: bool) -> None:
    """Make this mount namespace the guard's: masks hidden, `root` the only writable tree."""
    if loopback_up:  # a network namespace of its own starts with its loopback down
        try:
            pid = os.posix_spawnp("ip", ["ip", "link", "set", "lo", "up"], os.environ)
            os.waitpid(pid, 0)
        except OSError:
            pass
    for mask in masks:
        if os.path.isdir(mask):
            _mount("ampbench-mask", mask, "tmpfs", 0, "size=64k,mode=0755")
        else:
            _mount("/dev/null", mask, None, MS_BIND, None)
    _mount(root, root, None, MS_BIND, None)
    with open("/proc/self/mountinfo", "rb") as fh:
        table = fh.read().splitlines()
    for line in table:
        fields = line.split()
        point = _unescape(fields[4])
        if point == root or point.startswith(root.rstrip("/") + "/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in fields[5].decode().split(","):
            flags |= _KEPT_FLAGS.get(option, 0)
        # A mount point hidden under a later mount (or gone) is out of reach anyway.
        with contextlib.suppress(OSError):
            _mount(None, point, None, flags, None)
    os.chdir(cwd)


def _confine_main(args: list[str]) -> None:
    """``--confine ROOT CWD MASKS LO SETPRIV -- SERVER-ARGV``: confine, then exec setpriv,
    which drops every capability (so the mounts cannot be undone) and execs the server."""
    root, cwd, masks, lo, setpriv, separator, *server = args
    if separator != "--" or not server:
        raise SystemExit("usage: session_server.py --confine ROOT CWD MASKS LO SETPRIV -- ARGV")
    _confine(root, cwd, [m for m in masks.split("\n") if m], lo == "up")
    drop = ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    os.execv(setpriv, [setpriv, *drop, *server])


# --------------------------------------------------------------------------- one command


def _exec_command(argv: list[str], cwd: str, env: dict[str, str], rlimits: list[list]) -> None:
    """In the command's process: never returns."""
    try:
        # Its own process group: `kill 0` in a command reaches the command, not its reaper.
        os.setpgid(0, 0)
        # Python ignores SIGPIPE and SIGXFSZ; the command gets the defaults back (`yes | head`).
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        if rlimits:
            try:
                for name, value in rlimits:
                    which = getattr(resource, "RLIMIT_" + name.upper())
                    hard = resource.getrlimit(which)[1]
                    value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
                    resource.setrlimit(which, (value, value))
            except (OSError, ValueError, AttributeError) as exc:
                _say(f"cannot set the resource limits: {exc}")
                os._exit(126)
        try:
            os.chdir(cwd)
        except OSError as exc:
            _say(f"cannot enter {cwd}: {exc.strerror}")
            os._exit(126)
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            _say(f"cannot run {argv[0]}: {exc.strerror}")
        os._exit(127)
    finally:
        os._exit(127)


def _reaper(server: int, channel_fd: int, stdio: list[int]) -> int:
    """In the reaper (a fork of the server): start the command, wait for all it started."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # Without a PID namespace (guard none) nothing else ends a reaper whose server died.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server:
        return 125
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    os.setsid()
    # The command's stdin and output become fds 0-2; nothing else of the server stays open.
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
    keep = channel_fd
    os.closerange(3, keep)
    os.closerange(keep + 1, max(keep + 2, os.sysconf("SC_OPEN_MAX")))
    os.set_inheritable(keep, False)
    channel = socket.socket(fileno=keep)
    try:
        (size,) = LENGTH.unpack(_recv_exact(channel, LENGTH.size))
        request = marshal.loads(_recv_exact(channel, size))
        if request.get("join"):
            channel.sendall(b"P")
            if channel.recv(1) != b"G":
                _say("cannot enter the command's cgroup")
                return 125
    except (OSError, EOFError, ValueError, TypeError) as exc:
        _say(f"no command received: {exc}")
        return 125
    child = os.fork()
    if child == 0:
        _exec_command(request["argv"], request["cwd"], request["env"], request.get("rlimits") or [])
    # The command's input is the command's: once it is gone, a writer gets EPIPE.
    os.close(0)
    status = 0
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        if pid == child:
            status = st
    code = os.waitstatus_to_exitcode(status)
    # Killed by signal N: 128 + N, as a shell reports it.
    return 128 - code if code < 0 else code


# --------------------------------------------------------------------------- processes


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every live process this server can see (zombies left out)."""
    out: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) > 19 and fields[0] != b"Z":
            out[int(name)] = (int(fields[1]), fields[19].decode())
    return out


def _kill(pid: int, started: str) -> None:
    """SIGKILL `pid` if it is still the process that started at `started` (no pid reuse race)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[-1].split()
        if len(fields) > 19 and fields[19].decode() == started:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


SWEEP_GIVE_UP_S = 10.0
"""How long a sweep keeps killing. Only a process stuck in the kernel (uninterruptible
sleep) outlives a SIGKILL for long; the harness gives up on the command's output first."""


class Server:
    """The event loop: messages from the harness, and children that exited."""

    def __init__(self, control: socket.socket, scratch: list[str], root: str) -> None:
        self.control = control
        self.scratch = scratch
        self.root = root
        self.pid = os.getpid()
        self.reapers: dict[int, tuple[str, socket.socket]] = {}
        self.by_id: dict[str, int] = {}
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def serve(self) -> None:
        poller = select.poll()
        poller.register(self.control, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        self.control.send(b"ready")
        while True:
            for fd, _ in poller.poll():
                if fd == self.wake_r:
                    while True:
                        try:
                            if not os.read(self.wake_r, 512):
                                break
                        except BlockingIOError:
                            break
                    if self.collect():
                        self.sweep(set())
                elif not self.handle():
                    self.sweep(set(self.reapers))
                    return

    def handle(self) -> bool:
        """One message from the harness; False at EOF."""
        try:
            message, fds, _, _ = socket.recv_fds(self.control, 4096, 4)
        except OSError:
            return False
        if not message:
            return False
        verb, _, command_id = message.decode(errors="replace").partition(" ")
        if verb == "run" and len(fds) == 4:
            self.start(command_id, fds)
            return True
        for fd in fds:
            os.close(fd)
        if verb == "kill" and command_id in self.by_id:
            self.sweep({self.by_id[command_id]})
        return True

    def start(self, command_id: str, fds: list[int]) -> None:
        channel_fd, *stdio = fds
        pid = os.fork()
        if pid == 0:
            code = 125
            try:
                code = _reaper(self.pid, channel_fd, stdio)
            except BaseException as exc:  # a reaper never returns into the server's loop
                _say(f"reaper failed: {exc!r}")
            finally:
                os._exit(code)
        for fd in stdio:
            os.close(fd)
        self.reapers[pid] = (command_id, socket.socket(fileno=channel_fd))
        self.by_id[command_id] = pid

    def collect(self) -> bool:
        """Reap what has exited and report each reaper's status; True when a reaper was
        killed by a signal (what its command left behind is this server's now)."""
        abnormal = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            entry = self.reapers.pop(pid, None)
            if entry is None:
                continue  # an orphan of a killed reaper, gone now
            command_id, channel = entry
            self.by_id.pop(command_id, None)
            abnormal = abnormal or os.WIFSIGNALED(status)
            with contextlib.suppress(OSError):
                channel.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            channel.close()
        if not self.reapers:
            self.clear_scratch()
        return abnormal

    def sweep(self, doomed: set[int]) -> None:
        """SIGKILL the reapers in `doomed` with every process below them, and every process
        below this server that no other live reaper holds, until none is left."""
        give_up = time.monotonic() + SWEEP_GIVE_UP_S
        while time.monotonic() < give_up:
            keep = set(self.reapers) - doomed
            table = _processes()
            victims = []
            for pid, (_, started) in table.items():
                if pid == self.pid:
                    continue
                node, held = pid, False
                while node in table and node != self.pid and not held:
                    held = node in keep
                    node = table[node][0]
                if node == self.pid and not held:
                    victims.append((pid, started))
            if not victims:
                break
            for pid, started in victims:
                _kill(pid, started)
            time.sleep(0.002)
            self.collect()
        self.collect()

    def clear_scratch(self) -> None:
        # A private /dev/shm (bwrap) outlives a command; empty it so that nothing but the
        # workspace carries over from one command to the next.
        for directory in self.scratch:
            self._clear(directory)

    def _clear(self, directory: str) -> None:
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for name in names:
            path = os.path.join(directory, name)
            if path == self.root:
                continue  # the workspace itself may live there (bound onto the scratch tmpfs)
            if self.root.startswith(path + "/") and not os.path.islink(path):
                self._clear(path)
            elif os.path.isdir(path) and not os.path.islink(path):
                import shutil  # rarely needed: not worth its import time at every start

                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def main() -> None:
    if sys.argv[1:2] == ["--confine"]:
        _confine_main(sys.argv[2:])
        return
    control = socket.socket(fileno=int(sys.argv[1]))
    # argv[2] is the workspace root: it names the session in `ps`, and is kept when scratch
    # directories are emptied.
    root, scratch = os.path.realpath(sys.argv[2]), sys.argv[3:]
    _prctl(PR_SET_DUMPABLE, 0)
    # Orphans of a reaper that was killed come here (not to init) even without a PID namespace.
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    Server(control, scratch, root).serve()


if __name__ == "__main__":
    main()
