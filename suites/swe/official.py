"""What the official ``swebench`` package says about a real SWE-bench instance.

Its per-repository, per-version specs (Python version, install steps, test
command) and its log parsers are the definition of how an instance is set up
and graded; ampbench uses them as they are rather than copies. The package is
an optional extra (``pip install 'ampbench[swebench]'``): the bundled mini
suite does not need it, real instances do.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any

from harness.errors import AmpbenchError, UserError
from suites.swe.instances import Instance, bundled_project_dir

INSTALL_EXTRA = "pip install 'ampbench[swebench]'"
# The bundled mini projects are not SWE-bench repositories: their environment is pytest on
# the Python of the base image, their tests run with the suite's own pytest command.
BUNDLED_SPEC: Mapping[str, Any] = {"python": "3.11", "pip_packages": ["pytest"]}


class SpecError(AmpbenchError):
    """No environment spec for an instance; the message says why."""


def _swebench() -> Any:
    try:
        from swebench.harness import constants
    except ImportError:
        raise UserError(f"real SWE-bench environments need the swebench package: {INSTALL_EXTRA}") from None
    return constants


def environment_spec(
    instance: Instance, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The official spec of the instance's repository and version, with `overrides` on top
    (keyed by 'owner/name', 'owner/name@version' or the instance id, in that order)."""
    extra: dict[str, Any] = {}
    for key in (instance.repo, f"{instance.repo}@{instance.version}", instance.instance_id):
        extra.update((overrides or {}).get(key, {}))
    if bundled_project_dir(instance.instance_id) is not None:
        return {**BUNDLED_SPEC, **extra}
    official = _swebench().MAP_REPO_VERSION_TO_SPECS.get(instance.repo, {}).get(instance.version)
    if official is None and not extra:
        raise SpecError(
            f"{instance.instance_id}: the swebench package has no environment spec for {instance.repo} "
            f"version {instance.version!r}"
        )
    return {**(official or {}), **extra}


def requirements_paths(repo: str) -> list[str]:
    return list(_swebench().MAP_REPO_TO_REQS_PATHS.get(repo, ["requirements.txt"]))


def clean_requirements(text: str) -> str:
    from swebench.harness.test_spec.python import clean_requirements as clean

    return clean(text)


def official_tests(instance: Instance) -> tuple[str, Callable[[str], dict[str, str]]] | None:
    """The official test command of a real instance (its spec's test_cmd on the test files
    the test patch touches) and the official log parser of its repository; None for the
    bundled mini suite, a repository the swebench package does not know, or no swebench."""
    if bundled_project_dir(instance.instance_id) is not None:
        return None
    try:
        specs = _swebench().MAP_REPO_VERSION_TO_SPECS
        from swebench.harness.log_parsers import MAP_REPO_TO_PARSER
        from swebench.harness.test_spec.python import get_test_directives
    except (UserError, ImportError):
        return None
    spec = specs.get(instance.repo, {}).get(instance.version)
    parser = MAP_REPO_TO_PARSER.get(instance.repo)
    if spec is None or parser is None or not spec.get("test_cmd"):
        return None
    test_cmd = spec["test_cmd"]
    test_cmd = " && ".join(test_cmd) if isinstance(test_cmd, list) else str(test_cmd)
    directives = get_test_directives({"repo": instance.repo, "test_patch": instance.test_patch})
    command = f"{test_cmd} {shlex.join(directives)}".strip()

    def parse(log: str) -> dict[str, str]:
        # The Python parsers read only the log; the TestSpec argument is for other languages.
        return dict(parser(log, None))

    return command, parse
