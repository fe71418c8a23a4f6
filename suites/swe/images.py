"""Container images of real SWE-bench instances: the official ones, or built here.

An instance runs in its own image, with the repository at ``/testbed`` at
``base_commit`` and its dependencies installed, as the official SWE-bench
harness does. `ensure_image` finds it in this order (``source``):

1. ``official`` / ``auto``: the official evaluation image
   (``docker.io/swebench/sweb.eval.x86_64.<id>:latest``), present or pulled;
2. ``build`` / ``auto`` when it cannot be pulled: ampbench builds the image from
   the instance's specification in the official ``swebench`` package (Python
   version, ``pre_install`` commands, packages or requirements, ``pip_packages``,
   the ``install`` command). No conda: a virtualenv of the Python version the
   spec asks for, from a **base image** per Python version:

   * ``base_image`` (``--base-image``), a reference with a ``{python}``
     placeholder such as ``python:{python}-slim-bookworm``; or
   * a Debian root filesystem made here with ``debootstrap`` (root only) from the
     release that ships that Python: 3.9 bullseye, 3.11 bookworm, 3.13 trixie.

   The spec's conda ``packages`` are installed with pip (their names are the
   same for the packages SWE-bench lists); an ``environment.yml`` spec needs
   conda and is refused with the reason.

Images are cached by the engine under a tag that hashes everything they are
made from (the spec, the requirements, the base, ``base_commit``), so a second
run of an instance starts in seconds and a changed spec builds anew. Builds of
one image are serialised across threads and processes (a lock file). A build
failure is an `ImageError` whose message names the step and the log file;
grading turns it into ``env_error``.

Building needs the network (Debian's archive, PyPI); running does not. When the
harness trusts an extra certificate authority (``PIP_CERT``,
``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE`` set, e.g. behind a proxy), pip in
the build trusts it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import UserError
from suites.swe.containers import Engine, cli_env
from suites.swe.execution import docker_image_name
from suites.swe.instances import Instance, bundled_project_dir
from suites.swe.limits import DEFAULT_LIMITS, ResourceLimits
from suites.swe.official import SpecError, clean_requirements, environment_spec, requirements_paths
from suites.swe.workspace import DockerWorkspace, WorkspaceError, _materialize, find_in_mirror, host_git

OFFICIAL_NAMESPACE = "docker.io/swebench"
DEBIAN_RELEASES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "git", "ca-certificates", "patch")
VENV = "/opt/testbed"
# Part of every image tag: bump it when what an image holds changes, so old ones are not reused.
IMAGE_FORMAT = 1
SOURCES = ("auto", "official", "build")


class ImageError(SpecError):
    """An instance's environment image cannot be had; the message says why (and where the log is)."""


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ImageSettings:
    """Where instance images come from and how they are built."""

    engine: Engine
    source: str = "auto"
    base_image: str | None = None
    repo_mirror: str | None = None
    network: bool = True
    """Whether repositories that are not in the mirror may be fetched from GitHub."""
    debian_mirror: str = DEBIAN_MIRROR
    ca_bundle: str | None = None
    spec_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Spec fields by instance id, 'owner/name@version' or 'owner/name', over the official spec."""
    cache_dir: str | None = None
    log: Callable[[str], None] = _stderr_line

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise UserError(f"unknown image source {self.source!r} (choose from {', '.join(SOURCES)})")
        if self.base_image is not None and "{python}" not in self.base_image:
            raise UserError(
                f"--base-image {self.base_image!r} needs a {{python}} placeholder, e.g. python:{{python}}-slim"
            )


def default_ca_bundle() -> str | None:
    """The certificate bundle the harness's own HTTP clients are told to trust, if any."""
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return value
    return None


def cache_dir(settings: ImageSettings) -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    path = Path(settings.cache_dir or Path(cache_home) / "ampbench" / "images")
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- names


def official_image(instance: Instance) -> str:
    return docker_image_name(instance.instance_id, namespace=OFFICIAL_NAMESPACE)


# --------------------------------------------------------------------------- locking


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _image_lock(settings: ImageSettings, name: str):  # type: ignore[no-untyped-def]
    """One builder of `name` at a time: threads of this process, then other processes."""
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault(name, threading.Lock())
    with lock:
        path = cache_dir(settings) / (hashlib.sha256(name.encode()).hexdigest()[:16] + ".lock")
        with open(path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- images


def ensure_image(instance: Instance, settings: ImageSettings) -> str:
    """The image to run `instance` in, pulled or built if need be (ImageError when neither works)."""
    # The bundled mini projects have no official image: they are ampbench's own.
    official = settings.source in ("auto", "official") and bundled_project_dir(instance.instance_id) is None
    if official:
        name = official_image(instance)
        if settings.engine.image_exists(name):
            return name
        pulled = settings.engine.call(["pull", name], timeout_s=3600)
        if pulled.returncode == 0:
            return name
        reason = _last_line(pulled.stderr) or "pull failed"
        if settings.source == "official":
            raise ImageError(f"{instance.instance_id}: cannot pull {name}: {reason}")
    return build_instance_image(instance, settings)


def _last_line(data: bytes | str) -> str:
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.")[:80] or "instance"


def base_image(python: str, settings: ImageSettings) -> str:
    """The base image for `python`: the user's, or a Debian root filesystem imported once."""
    if settings.base_image is not None:
        name = settings.base_image.format(python=python)
        if settings.engine.image_exists(name):
            return name
        pulled = settings.engine.call(["pull", name], timeout_s=3600)
        if pulled.returncode != 0:
            raise ImageError(f"base image {name}: cannot pull it: {_last_line(pulled.stderr)}")
        return name
    release = DEBIAN_RELEASES.get(python)
    if release is None:
        known = ", ".join(f"{v} ({r})" for v, r in DEBIAN_RELEASES.items())
        raise ImageError(
            f"no Debian release ships Python {python} (built here: {known}); give a base image, "
            "e.g. --base-image 'python:{python}-slim-bookworm'"
        )
    name = f"localhost/ampbench-swe-base:py{python}-{release}-f{IMAGE_FORMAT}"
    if settings.engine.image_exists(name):
        return name
    with _image_lock(settings, name):
        if not settings.engine.image_exists(name):
            _debootstrap_image(name, release, settings)
    return name


def _debootstrap_image(name: str, release: str, settings: ImageSettings) -> None:
    tool = shutil.which("debootstrap")
    if tool is None or os.geteuid() != 0:
        raise ImageError(
            f"building the base image {name} needs debootstrap run as root "
            "(or give one: --base-image 'python:{python}-slim-bookworm')"
        )
    log_path = cache_dir(settings) / f"{_slug(name)}.log"
    settings.log(f"building base image {name} with debootstrap ({release}; a few minutes, once)")
    with tempfile.TemporaryDirectory(prefix="ampbench-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        with open(log_path, "wb") as log:
            made = subprocess.run(
                [
                    tool,
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    release,
                    str(rootfs),
                    settings.debian_mirror,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=3600,
                check=False,
            )
        if made.returncode != 0:
            tail = _last_line(log_path.read_text(errors="replace"))
            raise ImageError(f"debootstrap {release} failed: {tail} (log: {log_path})")
        # apt in the image uses the same archive, and pip finds no stale caches.
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            settings.engine.command("import", "--change", 'CMD ["/bin/bash"]', "-", name),
            stdin=tar.stdout,
            capture_output=True,
            env=cli_env(),
            timeout=3600,
            check=False,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageError(f"importing the {release} root filesystem failed: {_last_line(imported.stderr)}")
    settings.log(f"base image {name} ready")


def _requirements(instance: Instance, settings: ImageSettings, checkout: Path) -> str:
    """The requirements files SWE-bench installs for `requirements.txt` specs, `-r` included,
    as they were at environment_setup_commit (else base_commit)."""
    mirror = find_in_mirror(settings.repo_mirror, instance.repo) if settings.repo_mirror else None
    commit = instance.environment_setup_commit or instance.base_commit

    def show(path: str) -> str | None:
        for repo, rev in ((mirror, commit), (checkout, instance.base_commit)):
            if repo is None:
                continue
            shown = host_git(["show", f"{rev}:{path}"], Path(repo))
            if shown.returncode == 0:
                return shown.stdout.decode("utf-8", errors="replace")
        return None

    for path in requirements_paths(instance.repo):
        text = show(path)
        if text is None:
            continue
        lines: list[str] = []
        for line in text.splitlines():
            if line.strip().startswith("-r"):
                included = os.path.normpath(os.path.join(os.path.dirname(path), line.strip()[2:].strip()))
                lines += [x for x in (show(included) or "").splitlines() if not x.strip().startswith("-r")]
            else:
                lines.append(line)
        return clean_requirements("\n".join(lines))
    raise ImageError(
        f"{instance.instance_id}: no requirements file of {instance.repo} found at {commit[:12]}"
    )


def _bash(*commands: str) -> str:
    script = " && ".join(f"( {c} )" for c in commands if c)
    return "RUN " + json.dumps(["/bin/bash", "-c", "set -eo pipefail; " + script])


def containerfile(
    spec: Mapping[str, Any], *, base: str, python: str, requirements: str | None, ca: bool
) -> str:
    """The build recipe of an instance image (the build context holds testbed/ and the rest)."""
    pip = (
        f"PIP_CERT=/etc/ampbench-build-ca.pem {VENV}/bin/python -m pip" if ca else f"{VENV}/bin/python -m pip"
    )
    packages = str(spec.get("packages") or "").strip()
    pre_install = [str(c) for c in spec.get("pre_install") or []]
    install = spec.get("install")
    pip_packages = [str(p) for p in spec.get("pip_packages") or []]
    lines = [f"FROM {base}"]
    if ca:
        lines.append("COPY build-ca.pem /etc/ampbench-build-ca.pem")
    lines += [
        _bash(
            "command -v git >/dev/null && command -v patch >/dev/null || "
            "(apt-get update -qq && apt-get install -y -qq --no-install-recommends git patch ca-certificates)",
            f"PY=$(command -v python{python} || command -v python3) && $PY -m venv {VENV}",
        ),
        # Like the conda environments of the official images: a current pip (a distribution's
        # own is too old for today's setuptools in build isolation), and wheel (without it pip
        # installs some sdists without compiling them, and their warnings differ).
        _bash(f"{pip} install --upgrade pip wheel"),
        f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
        f"VIRTUAL_ENV={VENV} PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1",
    ]
    if requirements is not None:
        lines += [
            "COPY requirements.txt /root/requirements.txt",
            _bash(f"{pip} install -r /root/requirements.txt"),
        ]
    elif packages:
        lines.append(_bash(f"{pip} install {packages}"))
    if pip_packages:
        lines.append(_bash(f"{pip} install {shlex.join(pip_packages)}"))
    lines += ["COPY testbed /testbed", "WORKDIR /testbed"]
    for command in pre_install:
        lines.append(_bash(command))
    if install:
        lines.append(_bash(str(install).replace("python -m pip", pip)))
    lines.append(_bash("git config --global --add safe.directory /testbed", "git status --short >/dev/null"))
    return "\n".join(lines) + "\n"


def build_instance_image(instance: Instance, settings: ImageSettings) -> str:
    """Build (once) the image of `instance` from its swebench spec; return its name."""
    spec = environment_spec(instance, settings.spec_overrides)
    if str(spec.get("packages") or "") == "environment.yml":
        raise ImageError(
            f"{instance.instance_id}: its swebench spec installs a conda environment.yml, which needs conda; "
            "use the official image (--images official) where a registry is reachable"
        )
    python = str(spec.get("python") or "")
    if not python:
        raise ImageError(f"{instance.instance_id}: its environment spec names no Python version")
    base = base_image(python, settings)
    ca = settings.ca_bundle if settings.ca_bundle is not None else default_ca_bundle()
    with tempfile.TemporaryDirectory(prefix="ampbench-image-") as tmp:
        context = Path(tmp)
        try:
            _materialize(
                instance,
                context / "testbed",
                repo_mirror=settings.repo_mirror,
                network=settings.network,
                url_template="https://github.com/{repo}.git",
                fetch_timeout_s=1800,
            )
        except WorkspaceError as exc:
            raise ImageError(f"{instance.instance_id}: cannot check out {instance.repo}: {exc}") from None
        requirements = (
            _requirements(instance, settings, context / "testbed")
            if str(spec.get("packages") or "") == "requirements.txt"
            else None
        )
        recipe = containerfile(spec, base=base, python=python, requirements=requirements, ca=bool(ca))
        digest = hashlib.sha256(
            json.dumps(
                [IMAGE_FORMAT, base, instance.repo, instance.base_commit, recipe], sort_keys=True
            ).encode()
        ).hexdigest()[:12]
        name = f"localhost/ampbench-swe-env:{_slug(instance.instance_id)}-{digest}"
        if settings.engine.image_exists(name):
            return name
        with _image_lock(settings, name):
            if settings.engine.image_exists(name):
                return name
            (context / "Containerfile").write_text(recipe)
            if requirements is not None:
                (context / "requirements.txt").write_text(requirements + "\n")
            if ca:
                shutil.copyfile(ca, context / "build-ca.pem")
            _build(instance, name, context, settings)
    return name


_STEP = re.compile(r"^(STEP \d+/\d+|#\d+ \[.*?\d+/\d+\])")


def _build(instance: Instance, name: str, context: Path, settings: ImageSettings) -> None:
    log_path = cache_dir(settings) / f"{_slug(instance.instance_id)}.build.log"
    settings.log(f"building image {name} for {instance.instance_id} (log: {log_path})")
    argv = settings.engine.command("build", "--network=host", "-f", "Containerfile", "-t", name, ".")
    steps = 0
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            argv,
            cwd=context,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        last_step, tail = "", []
        for line in proc.stdout:
            log.write(line)
            if _STEP.match(line):
                steps += 1
                last_step = line.strip()
                settings.log(f"  {instance.instance_id}: {last_step[:160]}")
            tail = [*tail[-19:], line.rstrip()]
        code = proc.wait()
    if code != 0:
        detail = next((t for t in reversed(tail) if t.strip() and not t.startswith("time=")), "")
        raise ImageError(
            f"{instance.instance_id}: building its environment failed at {last_step or 'the start'}: "
            f"{detail[:300]} (log: {log_path})"
        )
    settings.log(f"image {name} ready")


def container_workspaces(
    settings: ImageSettings, *, limits: ResourceLimits = DEFAULT_LIMITS, network: bool = False
) -> Callable[[Instance], DockerWorkspace]:
    """A grading workspace factory: a fresh container of the instance's image each time, with
    no network unless asked (a test run needs none; the patch must not fetch its way to a pass)."""

    def factory(instance: Instance) -> DockerWorkspace:
        return DockerWorkspace.create(
            instance, ensure_image(instance, settings), engine=settings.engine, limits=limits, network=network
        )

    # Every container of an instance's image is the same environment (for grading.base_check
    # and shared verdicts); the settings say which image that is.
    image = repr([(f.name, getattr(settings, f.name)) for f in fields(settings) if f.name != "log"])
    factory.env_key = ("container", image, repr(limits), network)  # type: ignore[attr-defined]
    return factory
