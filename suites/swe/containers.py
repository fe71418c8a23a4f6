"""The container engine: Docker or Podman, driven through the CLI they share.

Which engine runs is a setting, not a guess baked into the code: ``auto``
(the default) takes ``docker`` when its daemon answers and ``podman``
otherwise; ``docker`` or ``podman`` names one; any other value is a whole
command line, e.g. ``podman --runtime runc --cgroup-manager=cgroupfs`` for a
machine whose default OCI runtime cannot run containers. The setting comes
from ``--engine``, else ``AMPBENCH_CONTAINER_ENGINE``, else the suite's
config.yaml (``containers.engine``).

The engine CLI gets its own environment (socket, context, proxy settings):
never the agent's, never the harness's keys.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from harness.errors import UserError

ENGINE_ENV = "AMPBENCH_CONTAINER_ENGINE"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CLI_KEEP = ("PATH", "HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
_CLI_PREFIXES = ("DOCKER_", "CONTAINERS_", "BUILDAH_")
# Container limits never above what the harness itself may have: an engine's default
# (podman: a million open files) can exceed this process's hard limit, and then every
# container fails to start ("error setting rlimit ... operation not permitted").
_NOFILE_CAP = 1 << 20


def cli_env() -> dict[str, str]:
    """The environment of the engine CLI: its own settings, nothing of the agent or the harness."""
    env = {k: v for k, v in os.environ.items() if k in _CLI_KEEP or k.startswith(_CLI_PREFIXES)}
    env.setdefault("PATH", _SYSTEM_PATH)
    return env


@dataclass(frozen=True)
class Engine:
    """One container engine CLI: its argv prefix (program and global flags)."""

    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        """'docker' or 'podman' (the program's base name)."""
        return os.path.basename(self.argv[0])

    def __str__(self) -> str:
        return shlex.join(self.argv)

    def command(self, *args: str) -> list[str]:
        return [*self.argv, *args]

    def call(
        self, args: Sequence[str], *, timeout_s: float, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the CLI and capture its output; a timeout is exit code 124, a missing program 127."""
        try:
            return subprocess.run(
                self.command(*args),
                env=cli_env(),
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, b"", f"{self.name} timed out".encode())
        except OSError as exc:
            return subprocess.CompletedProcess(self.argv, 127, b"", str(exc).encode())

    def available(self, timeout_s: float = 20.0) -> bool:
        """True when the engine answers `info` (for Docker: its daemon is reachable)."""
        return _answers(self.argv, timeout_s)

    def image_exists(self, image: str) -> bool:
        return self.call(["image", "inspect", image], timeout_s=60).returncode == 0


@cache
def _answers(argv: tuple[str, ...], timeout_s: float) -> bool:
    # Cached per process: a run asks once, not once per container.
    if shutil.which(argv[0]) is None:
        return False
    try:
        proc = subprocess.run(
            [*argv, "info"],
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def engine_setting(explicit: str | None = None, configured: str | None = None) -> str:
    """The engine setting in force: the explicit one, else $AMPBENCH_CONTAINER_ENGINE, else config."""
    for value in (explicit, os.environ.get(ENGINE_ENV), configured):
        if value and value.strip():
            return value.strip()
    return "auto"


def resolve_engine(setting: str | None = None) -> Engine:
    """The engine for `setting` (see the module doc); UserError in one line when none runs."""
    value = engine_setting(setting)
    if value == "auto":
        for name in ("docker", "podman"):
            engine = Engine((shutil.which(name) or name,))
            if engine.available():
                return engine
        raise UserError(
            "container backend: neither docker nor podman answers here; install one, "
            f"set {ENGINE_ENV} (e.g. 'podman --runtime runc'), or use --backend local"
        )
    try:
        argv = tuple(shlex.split(value))
    except ValueError as exc:
        raise UserError(f"container engine {value!r}: {exc}") from None
    if not argv:
        raise UserError("container engine: empty setting")
    engine = Engine((shutil.which(argv[0]) or argv[0], *argv[1:]))
    if shutil.which(argv[0]) is None:
        raise UserError(f"container engine {value!r}: {argv[0]} is not installed")
    if not engine.available():
        info = engine.call(["info"], timeout_s=30)
        lines = (info.stderr or info.stdout).decode(errors="replace").strip().splitlines()
        raise UserError(
            f"container engine {value!r} does not run here: {lines[-1] if lines else 'info failed'}"
        )
    return engine


def rlimit_flags(processes: int | None) -> list[str]:
    """`--ulimit` options for open files (the harness's own limits) and processes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = _NOFILE_CAP if hard == resource.RLIM_INFINITY else min(hard, _NOFILE_CAP)
    soft = hard if soft == resource.RLIM_INFINITY else min(soft, hard)
    flags = [f"--ulimit=nofile={soft}:{hard}"]
    if processes is not None:
        # The cgroup's pids limit is what binds (root ignores RLIMIT_NPROC); this only keeps
        # the engine from asking setrlimit for more than the kernel lets it give.
        flags.append(f"--ulimit=nproc={processes}:{processes}")
    return flags


def label_filter(label: str) -> list[str]:
    return ["--filter", f"label={label}"]
