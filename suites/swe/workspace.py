"""Per-task workspaces: a git checkout at an instance's base_commit.

`Workspace.create(instance)` makes a temporary directory laid out as::

    <base>/                 $TMPDIR/ampbench-workspaces (or the suite's workspace_dir)
      ampbench-swe-<instance>-XXXX.owner    who made it: pid, process start time, host
      ampbench-swe-<instance>-XXXX/         the root (the only writable tree under a guard)
        repo/               the checkout at base_commit: the agent's cwd
        home/               HOME of agent commands
        tmp/                TMPDIR of agent commands
        .ampbench/          scratch space of the harness (e.g. the index used by diff())

HOME and TMPDIR sit beside the checkout, so what tools write there never
shows up in the model patch. The checkout comes from, in this order:

1. the bundled mini suite: the instance's ``suites/swe/projects/<id>/repo``
   tree, committed deterministically (`build_repo_from_tree`), so the commit
   has the same hash on every machine and must equal ``base_commit``;
2. a local mirror directory (``--repo-mirror DIR``) holding a git repository
   of ``owner/name`` at ``DIR/owner__name``, ``DIR/owner/name`` (``.git``
   suffixes and bare repositories are fine);
3. ``https://github.com/owner/name`` when network access is allowed.

Only the history up to ``base_commit`` is fetched: later commits (the fix!)
are not in the workspace's object store, so ``git log --all`` cannot leak it.

`DockerWorkspace` offers the same methods on the ``/testbed`` checkout inside
a container of the instance's image (official, or built by `suites.swe.images`). Both satisfy `TaskWorkspace`, which is all
that grading and the scaffolds rely on. Git commands that touch the checkout
after the agent has worked on it run through the execution backend (under the
guard, with the scrubbed environment): the agent can write ``.git/config``, and
options like ``core.fsmonitor`` would otherwise run its code in the harness.

Clean-up: a workspace is a context manager; ``close()``/``__exit__`` kills
every command still running in it (a cancelled task run: SIGTERM and Ctrl-C
cancel task runs), then removes its directory and owner file — after
exceptions and KeyboardInterrupt too — and, as a last resort, so does garbage
collection or the interpreter's exit. Only SIGKILL (or a power cut) leaves a
workspace behind: its owner file, beside the root where commands cannot write
under a guard, names a process that is gone, and `remove_stale_workspaces()`
(called by ``ampbench run --resume`` through the suite's ``clean_stale()``)
removes it and kills whatever still runs in it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from harness.errors import AmpbenchError, UserError
from suites.swe.execution import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_TIMEOUT_S,
    DockerBackend,
    ExecResult,
    GuardChoice,
    LocalBackend,
    ProcessResult,
)
from suites.swe.instances import Instance, bundled_project_dir
from suites.swe.limits import DEFAULT_LIMITS, ResourceLimits, owner_alive, owner_tag

DEFAULT_URL_TEMPLATE = "https://github.com/{repo}.git"

# Files the harness never copies into a bundled repo, and never puts in a model patch.
CACHE_NAMES = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis")
CACHE_SUFFIXES = (".pyc", ".pyo")
_DIFF_EXCLUDES = (
    *(f":(exclude,glob)**/{name}/**" for name in CACHE_NAMES),
    *(f":(exclude,glob)**/*{suffix}" for suffix in CACHE_SUFFIXES),
    ":(exclude,glob)**/*.egg-info/**",
)
# Repository-controlled git settings that could run programs (fsmonitor, hooks)
# are switched off for every git call the harness makes on a checkout.
# Housekeeping (auto gc, `git maintenance`) is off too: a throwaway checkout never needs it,
# and it would start a process after every commit.
SAFE_GIT = (
    "git",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.pager=cat",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
)

# Identity and clock of the commit that imports a bundled tree: fixed, so that
# the commit hash is the same on every machine.
BUNDLED_AUTHOR = ("ampbench", "ampbench@users.noreply.github.com")


class WorkspaceError(AmpbenchError):
    """A workspace operation failed (git broken in the checkout, a path outside it)."""


class PatchError(WorkspaceError):
    """A patch does not apply; the message is git's reason."""


class TaskWorkspace(Protocol):
    """What grading and the scaffolds need from a workspace, local or in Docker."""

    instance_id: str
    base_commit: str
    repo_path: str
    """The checkout as commands see it."""

    def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult: ...

    def read_text(self, path: str) -> str: ...

    def write_text(self, path: str, text: str) -> None: ...

    def diff(self) -> str: ...

    def apply(self, patch: str) -> str: ...

    def checkout_base(self, paths: Iterable[str]) -> None: ...

    def base_entries(self, paths: Iterable[str]) -> set[str]: ...

    def base_text(self, path: str) -> str | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> TaskWorkspace: ...

    def __exit__(self, *exc: object) -> None: ...


# --------------------------------------------------------------------------- host-side git (trusted input only)


def _host_git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # Neutral configuration: the user's ~/.gitconfig (signing, templates, object
    # format, autocrlf) must not change what we build or fetch.
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
    ):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


def host_git(
    args: Sequence[str],
    cwd: str | os.PathLike[str],
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 120.0,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run git in the harness process, for repositories the agent has not touched yet."""
    try:
        return subprocess.run(
            [*SAFE_GIT, *args],
            cwd=cwd,
            env=_host_git_env(env),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
        )
    except FileNotFoundError:
        raise UserError("git is not installed (the swe suite needs git >= 2.28)") from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            [*SAFE_GIT, *args], 124, b"", f"git timed out after {timeout_s:g} s".encode()
        )


def _git_reason(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[-1] if lines else f"exit status {proc.returncode}"


def _check(proc: subprocess.CompletedProcess[bytes], what: str) -> bytes:
    if proc.returncode != 0:
        raise WorkspaceError(f"{what}: {_git_reason(proc)}")
    return proc.stdout


def commit_date(created_at: str) -> str:
    """Git's internal date format ('<unix seconds> +0000') for an ISO timestamp; a
    fixed date when `created_at` is empty or unreadable."""
    try:
        when = datetime.fromisoformat(created_at.strip().replace("Z", "+00:00"))
    except ValueError:
        when = datetime(2024, 1, 1, tzinfo=UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"{int(when.timestamp())} +0000"


def _skip(name: str) -> bool:
    return name in CACHE_NAMES or name.endswith(CACHE_SUFFIXES) or name == ".DS_Store"


def build_repo_from_tree(
    tree: str | os.PathLike[str], dest: str | os.PathLike[str], *, message: str, date: str
) -> str:
    """Copy `tree` to `dest` (which must not exist), commit it on branch main, return the hash.

    The hash depends only on the files' bytes, `message` and `date`: the
    author, committer, file modes (no executable bits) and git configuration
    are fixed.
    """
    src, dst = Path(tree), Path(dest)
    if not src.is_dir():
        raise WorkspaceError(f"{src} is not a directory")
    dst.mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not _skip(d) and d != ".git")
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(exist_ok=True)
        for name in sorted(filenames):
            if _skip(name):
                continue
            # copyfile: bytes only, new mode 0o666 & ~umask, so git records 100644 everywhere.
            shutil.copyfile(Path(dirpath, name), dst / rel / name)
    name, email = BUNDLED_AUTHOR
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_COMMITTER_DATE": date,
    }
    # No template: sample hooks (never run: hooksPath is /dev/null) would be files to copy.
    _check(host_git(["init", "-q", "--template="], dst), "git init")
    _check(host_git(["symbolic-ref", "HEAD", "refs/heads/main"], dst), "git symbolic-ref")
    _check(host_git(["config", "core.autocrlf", "false"], dst), "git config")
    _check(host_git(["add", "-A", "."], dst, env=env), "git add")
    _check(
        host_git(
            ["commit", "-q", "--no-verify", "--no-gpg-sign", "--allow-empty", "-m", message], dst, env=env
        ),
        "git commit",
    )
    return _check(host_git(["rev-parse", "HEAD"], dst), "git rev-parse").decode().strip()


def bundled_commit_message(repo: str, version: str) -> str:
    return f"Import {repo} {version}".rstrip()


def find_in_mirror(mirror: str | os.PathLike[str], repo: str) -> Path | None:
    """The git repository of `repo` ('owner/name') in a mirror directory, or None."""
    owner, _, name = repo.partition("/")
    base = Path(mirror)
    for candidate in (
        base / f"{owner}__{name}",
        base / f"{owner}__{name}.git",
        base / owner / name,
        base / owner / f"{name}.git",
    ):
        if (candidate / ".git").exists() or (candidate / "HEAD").is_file():
            return candidate
    return None


def _fetch_commit(source: str, dest: Path, commit: str, *, timeout_s: float) -> None:
    """Make `dest` a repository whose branch main is `commit` from `source`, with
    no history after it."""
    dest.mkdir(parents=True)
    _check(host_git(["init", "-q"], dest), "git init")
    _check(host_git(["symbolic-ref", "HEAD", "refs/heads/main"], dest), "git symbolic-ref")
    fetched = host_git(["fetch", "-q", "--no-tags", source, commit], dest, timeout_s=timeout_s)
    if fetched.returncode != 0:
        # Servers that refuse to serve a bare commit id: fetch every ref, then
        # forget them again so that only base_commit's history stays reachable.
        refspecs = ["+refs/heads/*:refs/ampbench/heads/*", "+refs/tags/*:refs/ampbench/tags/*"]
        fetched_all = host_git(["fetch", "-q", "--no-tags", source, *refspecs], dest, timeout_s=timeout_s)
        if fetched_all.returncode != 0:
            raise WorkspaceError(_git_reason(fetched))
        if host_git(["cat-file", "-e", f"{commit}^{{commit}}"], dest).returncode != 0:
            raise WorkspaceError(f"commit {commit} is not in {source}")
        _check(host_git(["update-ref", "refs/heads/main", commit], dest), "git update-ref")
        refs = _check(
            host_git(["for-each-ref", "--format=%(refname)", "refs/ampbench"], dest), "git for-each-ref"
        )
        for ref in refs.decode().split():
            host_git(["update-ref", "-d", ref], dest)
        host_git(["reflog", "expire", "--expire=now", "--all"], dest)
        host_git(["gc", "-q", "--prune=now"], dest, timeout_s=timeout_s)
    else:
        _check(host_git(["update-ref", "refs/heads/main", commit], dest), "git update-ref")
    _check(host_git(["reset", "-q", "--hard", "main"], dest, timeout_s=timeout_s), "git reset")
    # FETCH_HEAD names the mirror path or URL; the agent does not need it.
    with contextlib.suppress(OSError):
        (dest / ".git" / "FETCH_HEAD").unlink()


class _Templates:
    """Each bundled tree is committed once per process, in a template checkout that every
    workspace of it copies: a copy costs no git process, and gives the same commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: str | None = None
        self._built: dict[tuple[object, ...], tuple[Path, str]] = {}

    def _root(self) -> str:
        if self._dir is None:
            # Named and owned like a workspace, so that remove_stale_workspaces reaps it when
            # this process is killed; removed at exit otherwise.
            self._dir, marker = _owner_file("ampbench-swe-templates-", workspace_root(small=True))
            os.mkdir(self._dir, 0o700)
            atexit.register(_remove_workspace, self._dir, marker)
        return self._dir

    def copy(self, tree: Path, dest: Path, *, message: str, date: str) -> str:
        """Copy the committed `tree` to `dest` (which must not exist); return the commit."""
        # The tree's file list with sizes and times: an edited tree is committed anew.
        stamp = tuple(
            (os.path.join(d, f), *_size_and_time(os.path.join(d, f)))
            for d, _, files in sorted(os.walk(tree))
            for f in sorted(files)
        )
        key = (os.fspath(tree), message, date, stamp)
        with self._lock:
            built = self._built.get(key)
            if built is None:
                where = Path(tempfile.mkdtemp(dir=self._root())) / "repo"
                built = (where, build_repo_from_tree(tree, where, message=message, date=date))
                # One pack instead of a file (and a directory) per object: creating files is
                # most of a copy's cost on a busy file system.
                _check(host_git(["repack", "-a", "-d", "-q"], where), "git repack")
                self._built[key] = built
        shutil.copytree(built[0], dest, symlinks=True)
        return built[1]


def _size_and_time(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


_bundled_templates = _Templates()


def _materialize(
    instance: Instance,
    dest: Path,
    *,
    repo_mirror: str | os.PathLike[str] | None,
    network: bool,
    url_template: str,
    fetch_timeout_s: float,
) -> str:
    """Create the checkout of `instance` at `dest`; return where it came from."""
    project = bundled_project_dir(instance.instance_id)
    if project is not None:
        commit = _bundled_templates.copy(
            project / "repo",
            dest,
            message=bundled_commit_message(instance.repo, instance.version),
            date=commit_date(instance.created_at),
        )
        if commit != instance.base_commit:
            raise UserError(
                f"{instance.instance_id}: the bundled tree builds commit {commit[:12]}, but the instance says "
                f"{instance.base_commit[:12]}; regenerate with: python -m suites.swe.build_instances"
            )
        return "bundled"
    looked: list[str] = []
    if repo_mirror is not None:
        found = find_in_mirror(repo_mirror, instance.repo)
        if found is not None:
            try:
                _fetch_commit(
                    os.fspath(found.resolve()), dest, instance.base_commit, timeout_s=fetch_timeout_s
                )
            except WorkspaceError as exc:
                raise UserError(
                    f"{instance.instance_id}: cannot check out {instance.repo} from {found}: {exc}"
                ) from None
            return f"mirror:{found}"
        owner, _, name = instance.repo.partition("/")
        looked.append(f"{Path(repo_mirror) / f'{owner}__{name}'} or {Path(repo_mirror) / owner / name}")
    if network:
        url = url_template.format(repo=instance.repo, owner=instance.repo_owner, name=instance.repo_name)
        try:
            _fetch_commit(url, dest, instance.base_commit, timeout_s=fetch_timeout_s)
        except WorkspaceError as exc:
            where = f"is not in the mirror ({looked[0]}) and " if looked else ""
            raise UserError(
                f"{instance.instance_id}: repo {instance.repo} {where}cannot be fetched from {url}: {exc}"
            ) from None
        return f"url:{url}"
    owner, _, name = instance.repo.partition("/")
    if looked:
        raise UserError(
            f"{instance.instance_id}: repo {instance.repo} not found in the mirror (looked for {looked[0]}); "
            f"add it with: git clone https://github.com/{instance.repo} {Path(os.fspath(repo_mirror)) / f'{owner}__{name}'}"
        )
    raise UserError(
        f"{instance.instance_id}: repo {instance.repo} is not bundled and network access is off; "
        f"pass --repo-mirror DIR with a clone at DIR/{owner}__{name}"
    )


def _retry_removal(func: Callable[..., Any], target: str, exc_info: Any) -> None:
    """`shutil.rmtree`'s error handler: what failed to go, made removable and removed again."""
    if isinstance(exc_info[1], FileNotFoundError):
        return  # gone already: another process cleaning the same stale workspace got there first
    # The agent may have taken write (or read and search) permission from what it created.
    with contextlib.suppress(OSError):
        parent = os.path.dirname(target)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        mode = os.lstat(target).st_mode
        if not stat.S_ISLNK(mode):
            os.chmod(target, mode | (stat.S_IRWXU if stat.S_ISDIR(mode) else stat.S_IWUSR))
    with contextlib.suppress(OSError):
        if func in (os.unlink, os.remove, os.rmdir):
            func(target)
        elif os.path.isdir(target) and not os.path.islink(target):
            # A directory rmtree could not open or list: its own walk, now that it can.
            shutil.rmtree(target, ignore_errors=True)


def _rmtree(path: str) -> None:
    if os.path.lexists(path):
        shutil.rmtree(path, onerror=_retry_removal)


# --------------------------------------------------------------------------- patches


def _unquote_git_path(path: str) -> str:
    # git C-quotes paths with unusual characters: "a/t\303\251st.py"
    if len(path) >= 2 and path[0] == path[-1] == '"':
        raw = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return raw.encode("latin-1").decode("utf-8", "replace")
    return path


def patch_paths(patch: str) -> list[str]:
    """Files a unified diff touches (old and new names, without a/ b/), in order."""
    paths: list[str] = []
    for line in patch.splitlines():
        if line.startswith(("--- ", "+++ ")):
            name = _unquote_git_path(line[4:].split("\t")[0].strip())
            if name == "/dev/null":
                continue
            if name[:2] in ("a/", "b/"):
                name = name[2:]
            if name not in paths:
                paths.append(name)
    return paths


class _GitCheckout:
    """Diff, apply and reset through an execution backend (shared by both workspaces)."""

    instance_id: str
    base_commit: str
    repo_path: str
    _scratch_path: str

    def _exec(
        self, argv: Sequence[str], *, stdin: bytes | None = None, extra_env: dict[str, str] | None = None
    ) -> ProcessResult:
        raise NotImplementedError

    def _git(
        self, *args: str, stdin: bytes | None = None, extra_env: dict[str, str] | None = None, what: str = ""
    ) -> bytes:
        result = self._exec([*SAFE_GIT, *args], stdin=stdin, extra_env=extra_env)
        if not result.ok:
            raise WorkspaceError(f"{what or 'git ' + args[0]}: {result.error_line()}")
        return result.stdout

    def diff(self) -> str:
        """The model patch: every change of the work tree against base_commit.

        New files, deletions and committed changes are included; caches
        (__pycache__, .pytest_cache, *.pyc, ...) and *.egg-info are not, nor are
        files the repository's .gitignore ignores (as in every SWE-bench
        scaffold: they are build output). Uses a private index, so the agent's
        own staging area is left alone.
        """
        index = f"{self._scratch_path}/diff.index"
        env = {"GIT_INDEX_FILE": index}
        self._exec(["rm", "-f", index])
        self._git("read-tree", self.base_commit, extra_env=env, what="diff (read-tree)")
        self._git("add", "-A", "--", ".", *_DIFF_EXCLUDES, extra_env=env, what="diff (add)")
        out = self._git(
            "diff",
            "--cached",
            "--binary",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--no-renames",
            self.base_commit,
            extra_env=env,
            what="diff",
        )
        self._exec(["rm", "-f", index])
        return out.decode("utf-8", errors="replace")

    def apply(self, patch: str) -> str:
        """Apply a unified diff to the checkout; returns how ('git apply', 'patch --fuzz=5', or
        'empty' for a blank patch). Raises PatchError when neither method applies it (and
        then nothing is changed)."""
        if not patch.strip():
            return "empty"
        data = (patch if patch.endswith("\n") else patch + "\n").encode("utf-8")
        first = self._exec([*SAFE_GIT, "apply", "--verbose", "--whitespace=nowarn", "-"], stdin=data)
        if first.ok:
            return "git apply"
        # Like SWE-bench's harness: fall back to GNU patch with fuzz, which forgives
        # slightly wrong line numbers and context. Dry run first, so a failure leaves
        # the tree untouched.
        patch_cmd = [
            "patch",
            "--batch",
            "--fuzz=5",
            "-p1",
            "--forward",
            "--no-backup-if-mismatch",
            "--reject-file=-",
        ]
        dry = self._exec([*patch_cmd, "--dry-run"], stdin=data)
        if dry.ok and self._exec(patch_cmd, stdin=data).ok:
            return "patch --fuzz=5"
        raise PatchError(first.error_line())

    def checkout_base(self, paths: Iterable[str]) -> None:
        """Reset `paths` to base_commit; paths that do not exist at base_commit are deleted
        (so a test patch that creates them applies cleanly)."""
        wanted = sorted(set(paths))
        if not wanted:
            return
        listed = self._git(
            "ls-tree", "-r", "-z", "--name-only", self.base_commit, "--", *wanted, what="ls-tree"
        )
        at_base = {p for p in listed.decode("utf-8", "replace").split("\0") if p}
        existing = [p for p in wanted if p in at_base]
        if existing:
            self._git("checkout", self.base_commit, "--", *existing, what="checkout")
        others = [p for p in wanted if p not in at_base]
        if others:
            self._exec(["rm", "-f", "--", *others])

    def base_entries(self, paths: Iterable[str]) -> set[str]:
        """Which of `paths` (files or directories) exist at base_commit."""
        wanted = sorted(set(paths))
        if not wanted:
            return set()
        listed = self._git("ls-tree", "-z", "--name-only", self.base_commit, "--", *wanted, what="ls-tree")
        return {p for p in listed.decode("utf-8", "replace").split("\0") if p} & set(wanted)

    def base_text(self, path: str) -> str | None:
        """The text of `path` at base_commit, None when it does not exist there."""
        result = self._exec([*SAFE_GIT, "cat-file", "blob", f"{self.base_commit}:{path}"])
        if not result.ok:
            return None
        return result.stdout.decode("utf-8", errors="replace")

    def head_commit(self) -> str:
        return self._git("rev-parse", "HEAD").decode().strip()


# --------------------------------------------------------------------------- local workspace


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:60] or "task"


WORKSPACES_DIR = "ampbench-workspaces"
OWNER_SUFFIX = ".owner"


def _own_directory(path: Path) -> bool:
    """A real directory (not a symlink) owned by this user: safe to make workspaces in."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


# A RAM file system for small checkouts. Making files there costs the same whatever was
# deleted before; on a disk file system it may not (ext4 without a journal skips every
# inode freed in the last minutes, one by one: measured here, 0.6 ms a file after a few
# thousand deletions, against 0.013 ms on tmpfs), and a SWE run makes and removes
# thousands of files.
MEMORY_FS = "/dev/shm"
MEMORY_FS_MIN_FREE = 512 << 20


def _private_dir(parent: Path) -> Path | None:
    for candidate in (parent / WORKSPACES_DIR, parent / f"{WORKSPACES_DIR}-{os.geteuid()}"):
        with contextlib.suppress(FileExistsError, PermissionError, FileNotFoundError):
            candidate.mkdir(mode=0o700)
        if _own_directory(candidate):
            return candidate
    return None


def _memory_fs() -> Path | None:
    """`MEMORY_FS` when it is a writable tmpfs with room to spare, else None."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            mounted = any(
                f[1] == MEMORY_FS and f[2] == "tmpfs" for f in (ln.split() for ln in fh) if len(f) > 2
            )
        if not mounted or not os.access(MEMORY_FS, os.W_OK | os.X_OK):
            return None
        st = os.statvfs(MEMORY_FS)
    except OSError:
        return None
    return Path(MEMORY_FS) if st.f_bavail * st.f_frsize >= MEMORY_FS_MIN_FREE else None


def workspace_root(*, small: bool = False) -> Path:
    """Where workspaces are made by default: ``$TMPDIR/ampbench-workspaces`` (or, when another
    user owns that, ``$TMPDIR/ampbench-workspaces-<uid>``). `small` checkouts (the bundled
    mini suite's, under a megabyte) go to ``/dev/shm/ampbench-workspaces`` when /dev/shm
    is a tmpfs with room; a real repository could fill the machine's memory there."""
    if small and (memory := _memory_fs()) is not None and (found := _private_dir(memory)) is not None:
        return found
    tmp = Path(tempfile.gettempdir())
    found = _private_dir(tmp)
    if found is None:
        raise UserError(f"cannot make a private workspace directory in {tmp}; pass --workspace-dir")
    return found


def default_workspace_roots() -> list[Path]:
    """Every directory `workspace_root` may choose here."""
    roots = [workspace_root()]
    small = workspace_root(small=True)
    return roots if small in roots else [*roots, small]


def _host() -> str:
    return os.uname().nodename


def _owner_file(prefix: str, base: str | os.PathLike[str]) -> tuple[str, str]:
    """A new owner file in `base` naming this process; returns (the root beside it, its path).

    `remove_stale_workspaces` reads these: a root whose owner is gone is removed.
    """
    fd, marker = tempfile.mkstemp(prefix=prefix, suffix=OWNER_SUFFIX, dir=base)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"host": _host(), "owner": owner_tag(), "pid": os.getpid()}, fh)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(marker)
        raise
    return marker[: -len(OWNER_SUFFIX)], marker


def _remove_workspace(root: str, marker: str) -> None:
    _rmtree(root)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(marker)


def _kill_processes_in(root: str) -> None:
    """SIGKILL processes whose working directory or root is inside `root` (left by a harness
    that died; under a guard they die with it, without one they may run on)."""
    prefix = os.path.realpath(root)
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        for link in ("cwd", "root"):
            try:
                target = os.readlink(f"/proc/{name}/{link}")
            except OSError:
                continue
            if target == prefix or target.startswith(prefix + os.sep):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(name), signal.SIGKILL)
                break


def remove_stale_workspaces(base_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the workspaces in `base_dir` (default: `default_workspace_roots()`) whose owner process on
    this host is gone (it was killed with SIGKILL), with whatever still runs in them.

    Workspaces of live processes, and of other hosts (a shared file system), are left alone.
    Returns the roots removed. Cheap when there is nothing to do: safe to call at every start.
    """
    bases = [Path(base_dir)] if base_dir is not None else default_workspace_roots()
    removed: list[Path] = []
    markers: list[Path] = []
    for base in bases:
        with contextlib.suppress(OSError):
            markers += sorted(base.glob(f"ampbench-swe-*{OWNER_SUFFIX}"))
    for marker in markers:
        try:
            owner = json.loads(marker.read_text(encoding="utf-8"))
            host, tag = str(owner["host"]), str(owner["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours
        if host != _host() or owner_alive(tag):
            continue
        root = Path(os.fspath(marker)[: -len(OWNER_SUFFIX)])
        if root.is_dir() and not root.is_symlink():
            _kill_processes_in(os.fspath(root))
            _rmtree(os.fspath(root))
            removed.append(root)
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
    return removed


class Workspace(_GitCheckout):
    """A local workspace for one task run; create it with `Workspace.create`."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        instance_id: str,
        base_commit: str,
        source: str,
        guard: GuardChoice | str = "auto",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        extra_env: Mapping[str, str] | None = None,
        limits: ResourceLimits = DEFAULT_LIMITS,
        network: bool = True,
        owner_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.owner_file = Path(owner_file) if owner_file is not None else Path(f"{self.root}{OWNER_SUFFIX}")
        self._finalizer = weakref.finalize(
            self, _remove_workspace, os.fspath(self.root), os.fspath(self.owner_file)
        )
        # Host-side file access (the editor) and removal take turns: a write racing close()
        # must not re-create a directory that was just removed.
        self._io_lock = threading.RLock()
        self.instance_id = instance_id
        self.base_commit = base_commit
        self.source = source
        """'bundled', 'mirror:<path>' or 'url:<url>'."""
        self.repo_dir = self.root / "repo"
        self.home = self.root / "home"
        self.tmp = self.root / "tmp"
        self.scratch = self.root / ".ampbench"
        self.repo_path = os.fspath(self.repo_dir)
        self._scratch_path = os.fspath(self.scratch)
        self.python = sys.executable
        """The interpreter that grades: the harness's own, which has pytest (a dependency of
        ampbench); its directory is also first on the PATH of agent commands."""
        self.backend = LocalBackend(
            self.root,
            cwd=self.repo_dir,
            home=self.home,
            tmpdir=self.tmp,
            guard=guard,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            extra_env=extra_env,
            limits=limits,
            network=network,
        )

    @classmethod
    def create(
        cls,
        instance: Instance,
        *,
        repo_mirror: str | os.PathLike[str] | None = None,
        network: bool = True,
        url_template: str = DEFAULT_URL_TEMPLATE,
        base_dir: str | os.PathLike[str] | None = None,
        guard: GuardChoice | str = "auto",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        fetch_timeout_s: float = 1800.0,
        extra_env: Mapping[str, str] | None = None,
        limits: ResourceLimits = DEFAULT_LIMITS,
        command_network: bool = True,
    ) -> Workspace:
        """A fresh workspace at `instance.base_commit` (see the module doc for the sources).

        Raises UserError with one line when the repository cannot be found or
        fetched, or base_commit is not in it. `network` allows fetching the
        repository; `command_network` gives commands the network (see
        `LocalBackend`). `extra_env` adds variables to the scrubbed environment of
        every command (never secret-looking names); `limits` are the resource
        limits of every command.
        """
        small = bundled_project_dir(instance.instance_id) is not None
        base = Path(base_dir) if base_dir is not None else workspace_root(small=small)
        # The owner file first (its name is unique), then the root beside it: a workspace is
        # never without an owner, even if this process is killed right now.
        root, marker = _owner_file(f"ampbench-swe-{_slug(instance.instance_id)}-", base)
        try:
            os.mkdir(root, 0o700)
            for sub in ("home", "tmp", ".ampbench"):
                os.mkdir(os.path.join(root, sub))
            source = _materialize(
                instance,
                Path(root) / "repo",
                repo_mirror=repo_mirror,
                network=network,
                url_template=url_template,
                fetch_timeout_s=fetch_timeout_s,
            )
            return cls(
                root,
                instance_id=instance.instance_id,
                base_commit=instance.base_commit,
                source=source,
                guard=guard,
                timeout_s=timeout_s,
                max_output_bytes=max_output_bytes,
                extra_env=extra_env,
                limits=limits,
                network=command_network,
                owner_file=marker,
            )
        except FileExistsError:
            # A directory of that name without an owner file: not ours; leave it.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(marker)
            raise WorkspaceError(f"cannot make workspace {root}: it exists already") from None
        except BaseException:
            _remove_workspace(root, marker)
            raise

    @property
    def guard(self) -> str:
        return self.backend.guard

    def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """Run a shell command in the checkout (`cwd` relative to it); see LocalBackend.run.
        Raises `suites.swe.execution.BackendClosed` after `close()`."""
        return self.backend.run(command, cwd=cwd, timeout_s=timeout_s, max_output_bytes=max_output_bytes)

    def _exec(
        self, argv: Sequence[str], *, stdin: bytes | None = None, extra_env: dict[str, str] | None = None
    ) -> ProcessResult:
        return self.backend.exec_argv(argv, stdin=stdin, extra_env=extra_env, timeout_s=600)

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """An absolute path for `path` (relative to the checkout), following symlinks; it
        must stay inside the workspace root, so a symlink cannot lead the editor out."""
        full = Path(os.path.realpath(self.repo_dir / path))
        if full != self.root and self.root not in full.parents:
            raise WorkspaceError(f"{path} is outside the workspace")
        return full

    def read_text(self, path: str) -> str:
        with self._io_lock:
            if self.closed:
                raise WorkspaceError(f"cannot read {path}: the workspace is closed")
            try:
                return self.resolve(path).read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise WorkspaceError(f"cannot read {path}: {exc.strerror}") from None

    def write_text(self, path: str, text: str) -> None:
        with self._io_lock:
            if self.closed:
                raise WorkspaceError(f"cannot write {path}: the workspace is closed")
            target = self.resolve(path)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise WorkspaceError(f"cannot write {path}: {exc.strerror}") from None

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def abort(self) -> None:
        """Kill every command running in the workspace now, without waiting (from an event loop;
        `close()` follows). Later commands raise `suites.swe.execution.BackendClosed`."""
        self.backend.close(wait_s=0)

    def close(self) -> None:
        """Kill every command still running in the workspace, then remove its directory and
        owner file (idempotent; safe from another thread while a command runs)."""
        self.backend.close()
        with self._io_lock:
            self._finalizer()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({self.instance_id!r}, root={os.fspath(self.root)!r}, guard={self.guard!r})"


# --------------------------------------------------------------------------- docker workspace


class DockerWorkspace(_GitCheckout):
    """The ``/testbed`` checkout inside a container of the instance's image."""

    def __init__(self, instance: Instance, backend: DockerBackend, *, repo_path: str = "/testbed") -> None:
        self.instance_id = instance.instance_id
        self.base_commit = instance.base_commit
        self.backend = backend
        self.repo_path = repo_path
        self._scratch_path = "/tmp/.ampbench"
        self.python = "python"
        """The image's interpreter (its conda environment is activated for every command)."""
        made = backend.exec_argv(["mkdir", "-p", self._scratch_path], timeout_s=60)
        if not made.ok:
            raise WorkspaceError(f"docker workspace: {made.error_line()}")
        known = backend.exec_argv(
            [*SAFE_GIT, "cat-file", "-e", f"{self.base_commit}^{{commit}}"], cwd=repo_path
        )
        if not known.ok:
            raise UserError(
                f"{self.instance_id}: base_commit {self.base_commit[:12]} is not in {backend.image}:{repo_path}"
            )

    @classmethod
    def create(cls, instance: Instance, image: str, **backend_options: object) -> DockerWorkspace:
        """Start a container of `image` (`suites.swe.images.ensure_image` gives the instance's);
        UserError when no container engine runs."""
        backend = DockerBackend(image, **backend_options)  # type: ignore[arg-type]
        try:
            return cls(instance, backend)
        except BaseException:
            backend.close()
            raise

    def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        where = self.repo_path if cwd is None else os.path.normpath(os.path.join(self.repo_path, cwd))
        return self.backend.run(command, cwd=where, timeout_s=timeout_s, max_output_bytes=max_output_bytes)

    def _exec(
        self, argv: Sequence[str], *, stdin: bytes | None = None, extra_env: dict[str, str] | None = None
    ) -> ProcessResult:
        return self.backend.exec_argv(
            argv, cwd=self.repo_path, stdin=stdin, extra_env=extra_env, timeout_s=600
        )

    def read_text(self, path: str) -> str:
        result = self._exec(["cat", "--", path])
        if not result.ok:
            raise WorkspaceError(f"cannot read {path}: {result.error_line()}")
        return result.text()

    def write_text(self, path: str, text: str) -> None:
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'
        result = self._exec(["sh", "-c", script, "sh", path], stdin=text.encode("utf-8"))
        if not result.ok:
            raise WorkspaceError(f"cannot write {path}: {result.error_line()}")

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> DockerWorkspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
