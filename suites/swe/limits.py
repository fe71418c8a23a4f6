"""Resource limits of agent commands and grading runs: processes, memory, file size.

Why cgroups, and not only setrlimit: ampbench usually runs as root (CI, a
container), and for root ``RLIMIT_NPROC`` is no limit at all. The kernel skips
the check for the initial user (uid 0) and for any process holding
CAP_SYS_RESOURCE or CAP_SYS_ADMIN in the initial user namespace, and it counts
every process of the uid, not those of one command. A fork bomb run as root
goes straight through it. A cgroup counts exactly the processes (and threads)
of one command, whatever their uid, and its ``pids.max`` holds for root too.
``RLIMIT_AS`` is a poor memory limit as well: it caps address space, not
memory, so programs that reserve large virtual areas (V8's 4 GiB pointer
cage, Go's arenas, a BLAS library's per-thread buffers on a many-core machine)
fail under it while using little memory; a cgroup's memory limit counts what
is really used, summed over the command's processes, and the kernel says when
it killed a process for it.

So every command (and every grading run) gets its own cgroup when the machine
allows it (root, and a writable pids / memory controller: cgroup v1 or v2),
made before the command starts and removed after it. Per limit:

* processes (and threads) alive at once: ``pids.max`` of the command's cgroup.
  Fallback: ``RLIMIT_NPROC``, only where it counts the command alone (a
  non-root harness inside the guard's fresh user namespace); otherwise not
  enforced, with a note.
* memory: ``memory.max`` (v2) / ``memory.limit_in_bytes`` (v1) over all the
  command's processes, no swap on top; the kernel kills a process that goes
  beyond. Fallback: ``RLIMIT_AS`` per process (address space), with a note.
* file size: ``RLIMIT_FSIZE``, which holds for root too (set by the reaper
  before the command starts; under a guard the command cannot raise it).

Where the cgroups go: with cgroup v1 (the CI machines: a hybrid layout with
writable ``pids`` and ``memory`` hierarchies), under ``ampbench/`` in this
process's own cgroup of each hierarchy; with cgroup v2, under ``ampbench/``
right below the v2 root (the only cgroup that may hold processes and delegate
controllers; a container's own root usually cannot, and then the fallbacks
hold). The harness moves a command's reaper into its cgroup before the command
starts (`CommandCgroup.add`; about 10 ms per command on cgroup v1, where moving
a process is slow), so every process of the command is counted there.

A limit that was hit is said in the observation, in fixed words (see
`limit_notes`): the cgroup's own counters tell a fork refused at
``pids.max`` (``pids.events``) and a process killed at the memory limit
(``oom_kill``). A write refused at the file size limit kills the writer with
SIGXFSZ or fails with EFBIG; when the command's status or output shows one of
those, the workspace is searched for a file the command wrote up to the limit
(so the note never depends on what a normal command prints). Without a cgroup,
hitting the process or memory fallback is not detected.

`cgroup_support()` probes the machine once per process and says why a
controller is unavailable; `CommandCgroup` is the cgroup of one command;
`remove_stale_cgroups()` clears the cgroups of harness processes that died
(SIGKILL) before removing them. Each cgroup is named after its owner (pid and
process start time), so a stale one is recognised without any other record.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError

__all__ = [
    "DEFAULT_LIMITS",
    "NO_LIMITS",
    "CgroupSupport",
    "CommandCgroup",
    "ResourceLimits",
    "cgroup_support",
    "format_size",
    "limit_notes",
    "limits_from_config",
    "owner_alive",
    "owner_tag",
    "parse_size",
    "remove_stale_cgroups",
]

CONTROLLERS = ("pids", "memory")
LIMIT_NAMES = ("processes", "memory", "file_size")


@dataclass(frozen=True)
class ResourceLimits:
    """Limits of one command (and everything it starts). None: no limit."""

    processes: int | None = 512
    """Processes and threads alive at once."""
    memory_bytes: int | None = 4 << 30
    """Memory of all the command's processes together (per process without a cgroup)."""
    file_size_bytes: int | None = 1 << 30
    """Size of any one file a process writes."""
    disk_bytes: int | None = None
    """Disk space of the container's writable layer: Docker backend only (``--storage-opt size``),
    where the storage driver allows it. The local backend has no workspace quota."""

    def describe(self) -> str:
        parts = []
        if self.processes is not None:
            parts.append(f"{self.processes} processes")
        if self.memory_bytes is not None:
            parts.append(f"{format_size(self.memory_bytes)} of memory")
        if self.file_size_bytes is not None:
            parts.append(f"{format_size(self.file_size_bytes)} per file")
        if self.disk_bytes is not None:
            parts.append(f"{format_size(self.disk_bytes)} of disk (docker)")
        return ", ".join(parts) or "none"


DEFAULT_LIMITS = ResourceLimits()
NO_LIMITS = ResourceLimits(None, None, None, None)

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1000**3,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1000**4,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: Any, name: str) -> int | None:
    """Bytes from an integer or a string like '4GiB', '512 MiB', '1G' (binary units for
    K/M/G/T, decimal for KB/MB/GB/TB); None (YAML null) is no limit."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UserError(f"swe config: {name} must be a size like 4GiB, or null; got {value!r}")
    if isinstance(value, int):
        number, unit = float(value), 1
    else:
        match = _SIZE.match(str(value))
        if not match or match.group(2).lower() not in _UNITS:
            raise UserError(f"swe config: {name} must be a size like 4GiB, or null; got {value!r}")
        number, unit = float(match.group(1)), _UNITS[match.group(2).lower()]
    size = int(number * unit)
    if size <= 0:
        raise UserError(f"swe config: {name} must be positive, got {value!r}")
    return size


def format_size(size: int) -> str:
    """'4 GiB', '1 GiB', '512 MiB', '1.5 GiB', '1000 bytes'."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            value = size / factor
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


def limits_from_config(data: Mapping[str, Any] | None) -> ResourceLimits:
    """The `environment.limits` mapping of config.yaml (processes, memory, file_size, disk)."""
    if data is None:
        return DEFAULT_LIMITS
    if not isinstance(data, Mapping):
        raise UserError("swe config: environment.limits must be a mapping")
    unknown = sorted(set(data) - {"processes", "memory", "file_size", "disk"})
    if unknown:
        raise UserError(
            f"swe config: unknown key environment.limits.{unknown[0]} (known: processes, memory, file_size, disk)"
        )
    processes = data.get("processes", DEFAULT_LIMITS.processes)
    if processes is not None and (
        isinstance(processes, bool) or not isinstance(processes, int) or processes < 8
    ):
        raise UserError(
            f"swe config: environment.limits.processes must be an integer >= 8, or null; got {processes!r}"
        )

    def size(key: str, default: int | None) -> int | None:
        return parse_size(data[key], f"environment.limits.{key}") if key in data else default

    return ResourceLimits(
        processes=processes,
        memory_bytes=size("memory", DEFAULT_LIMITS.memory_bytes),
        file_size_bytes=size("file_size", DEFAULT_LIMITS.file_size_bytes),
        disk_bytes=size("disk", DEFAULT_LIMITS.disk_bytes),
    )


def limit_notes(hit: Iterable[str], limits: ResourceLimits) -> list[str]:
    """The observation lines for the limits a command hit, in a fixed order and wording."""
    hit = set(hit)
    notes = []
    if "processes" in hit and limits.processes is not None:
        notes.append(
            f"[ampbench: process limit ({limits.processes}) reached: some processes could not start]"
        )
    if "memory" in hit and limits.memory_bytes is not None:
        notes.append(
            f"[ampbench: memory limit ({format_size(limits.memory_bytes)}) reached: "
            "a process of the command was killed]"
        )
    if "file_size" in hit and limits.file_size_bytes is not None:
        notes.append(
            f"[ampbench: file size limit ({format_size(limits.file_size_bytes)}) reached: "
            "writing beyond it failed]"
        )
    return notes


# --------------------------------------------------------------------------- owners


def _start_time(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot), None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    try:
        return int(stat.rsplit(b")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


@functools.cache
def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def owner_tag(pid: int | None = None) -> str:
    """'<pid namespace>-<pid>-<start time>' of this process (or `pid`): unique on this machine
    while it lives, and never reused by another process (a reused pid has another start time)."""
    pid = os.getpid() if pid is None else pid
    return f"{_pid_namespace()}-{pid}-{_start_time(pid) or 0}"


def owner_alive(tag: str) -> bool:
    """Whether the process named by an `owner_tag` still runs. A process of another PID namespace
    (another container sharing the file system) cannot be seen from here: it counts as alive."""
    try:
        ns, pid, start = (int(part) for part in tag.split("-"))
    except ValueError:
        return True  # not ours to judge
    if ns != _pid_namespace():
        return True
    current = _start_time(pid)
    return current is not None and (start == 0 or current == start)


# --------------------------------------------------------------------------- cgroups


@dataclass(frozen=True)
class _Hierarchy:
    version: int
    """1 (one controller per mount) or 2 (unified)."""
    parent: Path
    """The directory under which ampbench makes its per-command cgroups."""
    controllers: tuple[str, ...]


@dataclass(frozen=True)
class CgroupSupport:
    """What this machine offers for per-command cgroups (see `cgroup_support`)."""

    hierarchies: tuple[_Hierarchy, ...] = ()
    problems: tuple[str, ...] = ()
    """Why a controller is unavailable, one line each."""

    def has(self, controller: str) -> bool:
        return any(controller in h.controllers for h in self.hierarchies)

    def describe(self) -> str:
        found = [f"{c} (cgroup v{h.version})" for h in self.hierarchies for c in h.controllers]
        return ", ".join(found) or "none"


def _mounts() -> list[tuple[str, str, str, str]]:
    """(mount root, mount point, fs type, super options) of every cgroup mount."""
    out = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        try:
            dash = fields.index("-")
        except ValueError:
            continue
        if len(fields) < dash + 4 or fields[dash + 1] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].replace("\\040", " ")
        out.append((fields[3], point, fields[dash + 1], fields[dash + 3]))
    return out


def _own_cgroups() -> tuple[dict[str, str], str | None]:
    """This process's cgroup path per v1 controller, and its v2 path."""
    v1: dict[str, str] = {}
    v2 = None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return v1, v2
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        else:
            for name in parts[1].split(","):
                v1[name] = parts[2]
    return v1, v2


def _relative(own: str, mount_root: str) -> str | None:
    if mount_root == "/":
        return own.lstrip("/")
    if own == mount_root or own.startswith(mount_root.rstrip("/") + "/"):
        return own[len(mount_root) :].lstrip("/")
    return None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _probe(hierarchy: _Hierarchy) -> str | None:
    """Make a cgroup under the hierarchy's parent, set a limit, put a process in it: None when it
    all works, else why not."""
    probe = hierarchy.parent / f"probe-{owner_tag()}-{uuid.uuid4().hex[:6]}"
    try:
        probe.mkdir()
    except OSError as exc:
        return f"cannot make a cgroup in {hierarchy.parent}: {exc.strerror}"
    try:
        if "pids" in hierarchy.controllers:
            _write(probe / "pids.max", "64")
        if "memory" in hierarchy.controllers:
            _write(
                probe / ("memory.max" if hierarchy.version == 2 else "memory.limit_in_bytes"), str(256 << 20)
            )
        sh = shutil.which("sh") or "/bin/sh"
        proc = subprocess.run(
            [sh, "-c", 'echo $$ > "$1" && grep -qx "$$" "$1"', "probe", str(probe / "cgroup.procs")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
        )
        if proc.returncode != 0:
            reason = proc.stderr.decode(errors="replace").strip().splitlines()
            return f"cannot put a process in a cgroup of {hierarchy.parent}: {reason[-1] if reason else 'failed'}"
        return None
    except OSError as exc:
        return f"cannot set a limit in {probe}: {exc.strerror}"
    except subprocess.SubprocessError as exc:
        return f"cgroup probe failed: {exc}"
    finally:
        _rmdir(probe)


def _v1_hierarchy(controller: str, mounts: list, own: dict[str, str]) -> tuple[_Hierarchy | None, str]:
    for root, point, fstype, options in mounts:
        if fstype != "cgroup" or controller not in options.split(","):
            continue
        rel = _relative(own.get(controller, "/"), root)
        if rel is None:
            return None, f"{controller}: this process's cgroup is not under {point}"
        parent = Path(point, rel, "ampbench")
        try:
            parent.mkdir(exist_ok=True)
        except OSError as exc:
            return None, f"{controller}: cannot make {parent} ({exc.strerror})"
        return _Hierarchy(1, parent, (controller,)), ""
    return None, ""


def _v2_hierarchy(wanted: list[str], mounts: list) -> tuple[_Hierarchy | None, str]:
    for _root, point, fstype, _options in mounts:
        if fstype != "cgroup2":
            continue
        base = Path(point)
        try:
            available = (base / "cgroup.controllers").read_text().split()
        except OSError as exc:
            return None, f"cgroup v2 at {point}: {exc.strerror}"
        controllers = [c for c in wanted if c in available]
        if not controllers:
            return None, f"cgroup v2 at {point} has no {' or '.join(wanted)} controller"
        # Made right below the v2 root, the only cgroup that may hold processes and hand
        # controllers to its children; a container's own root usually cannot.
        parent = base / "ampbench"
        try:
            enabled = (base / "cgroup.subtree_control").read_text().split()
            missing = [c for c in controllers if c not in enabled]
            if missing:
                _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
            parent.mkdir(exist_ok=True)
            inner = (parent / "cgroup.subtree_control").read_text().split()
            missing = [c for c in controllers if c not in inner]
            if missing:
                _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
        except OSError as exc:
            return None, f"cgroup v2 at {point}: cannot delegate {', '.join(controllers)} ({exc.strerror})"
        return _Hierarchy(2, parent, tuple(controllers)), ""
    return None, ""


@functools.cache
def cgroup_support() -> CgroupSupport:
    """Probe once per process which controllers ampbench can use for per-command cgroups."""
    if os.geteuid() != 0:
        return CgroupSupport((), ("cgroups need root (the harness runs as a regular user)",))
    mounts = _mounts()
    own_v1, _own_v2 = _own_cgroups()
    candidates: list[_Hierarchy] = []
    reasons: dict[str, str] = {}
    v2_wanted = []
    for controller in CONTROLLERS:
        found, problem = _v1_hierarchy(controller, mounts, own_v1)
        if found is not None:
            candidates.append(found)
        elif problem:
            reasons[controller] = problem
        else:
            v2_wanted.append(controller)
    if v2_wanted:
        found, problem = _v2_hierarchy(v2_wanted, mounts)
        if found is not None:
            candidates.append(found)
        for controller in v2_wanted:
            if found is None or controller not in found.controllers:
                reasons[controller] = problem or f"{controller}: no cgroup controller on this machine"
    working = []
    for hierarchy in candidates:
        problem = _probe(hierarchy)
        if problem is None:
            working.append(hierarchy)
        else:
            for controller in hierarchy.controllers:
                reasons[controller] = problem
    return CgroupSupport(tuple(working), tuple(reasons[c] for c in CONTROLLERS if c in reasons))


def _rmdir(path: Path, *, attempts: int = 50) -> bool:
    for _ in range(attempts):
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.02)
    return False


def _procs(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_cgroup(directory: Path, *, wait_s: float = 5.0) -> None:
    """SIGKILL every process of a cgroup, until it is empty (or `wait_s` passed)."""
    with contextlib.suppress(OSError):
        _write(directory / "cgroup.kill", "1")  # cgroup v2, Linux >= 5.14: all at once
    deadline = time.monotonic() + wait_s
    while (pids := _procs(directory)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def _counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


class CommandCgroup:
    """The cgroup(s) of one command: one per v1 hierarchy, or one in the v2 hierarchy."""

    def __init__(self, support: CgroupSupport, limits: ResourceLimits) -> None:
        self.limits = limits
        self.dirs: list[tuple[_Hierarchy, Path]] = []
        name = f"{owner_tag()}-{uuid.uuid4().hex[:8]}"
        try:
            for hierarchy in support.hierarchies:
                directory = hierarchy.parent / name
                directory.mkdir()
                self.dirs.append((hierarchy, directory))
                self._set_limits(hierarchy, directory)
        except OSError:
            self.remove()
            raise

    def _set_limits(self, hierarchy: _Hierarchy, directory: Path) -> None:
        limits = self.limits
        if "pids" in hierarchy.controllers and limits.processes is not None:
            _write(directory / "pids.max", str(limits.processes))
        if "memory" in hierarchy.controllers and limits.memory_bytes is not None:
            if hierarchy.version == 2:
                _write(directory / "memory.max", str(limits.memory_bytes))
                with contextlib.suppress(OSError):
                    _write(directory / "memory.swap.max", "0")
            else:
                _write(directory / "memory.limit_in_bytes", str(limits.memory_bytes))
                with contextlib.suppress(OSError):  # swap accounting may be off
                    _write(directory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))

    @property
    def procs_files(self) -> list[str]:
        return [os.fspath(d / "cgroup.procs") for _, d in self.dirs]

    def add(self, pid: int) -> None:
        """Move process `pid` (and from then on, what it starts) into the cgroup(s)."""
        for path in self.procs_files:
            _write(Path(path), str(pid))

    def kill(self) -> None:
        """SIGKILL every process of the command, wherever it went (other sessions, other
        process groups, daemons): nothing leaves a cgroup without write access to /sys."""
        for _, directory in self.dirs:
            _kill_cgroup(directory)

    def hits(self) -> set[str]:
        """The limits the command ran into: 'processes' (a fork refused), 'memory' (a process
        killed by the kernel for the memory limit)."""
        hit = set()
        for hierarchy, directory in self.dirs:
            if "pids" in hierarchy.controllers and _counter(directory / "pids.events", "max") > 0:
                hit.add("processes")
            if "memory" in hierarchy.controllers:
                events = directory / ("memory.events" if hierarchy.version == 2 else "memory.oom_control")
                if _counter(events, "oom_kill") > 0:
                    hit.add("memory")
        return hit

    def remove(self) -> None:
        """Kill what is left and remove the cgroup(s) (idempotent)."""
        dirs, self.dirs = self.dirs, []
        for _, directory in dirs:
            if _procs(directory):
                _kill_cgroup(directory)
            _rmdir(directory)


_CGROUP_NAME = re.compile(r"^(?:probe-)?(\d+-\d+-\d+)-[0-9a-f]+$")


def remove_stale_cgroups(support: CgroupSupport | None = None) -> list[Path]:
    """Kill the processes of, and remove, the command cgroups of harness processes that are gone."""
    support = support or cgroup_support()
    removed = []
    for hierarchy in support.hierarchies:
        try:
            children = sorted(p for p in hierarchy.parent.iterdir() if p.is_dir())
        except OSError:
            continue
        for child in children:
            match = _CGROUP_NAME.match(child.name)
            if match is None or owner_alive(match.group(1)):
                continue
            _kill_cgroup(child)
            if _rmdir(child, attempts=10):
                removed.append(child)
    return removed
