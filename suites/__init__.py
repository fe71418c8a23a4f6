"""The suite registry: a suite name maps to the import path of its adapter class.

Built-in suites are listed in `SUITES`; third-party packages add theirs through
the `ampbench.suites` entry-point group (`name = "package.module:Class"`). Both go
through the same door, `get_suite`, and nothing is imported until a suite is asked
for, so a broken or missing suite only fails when it is used.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from harness.errors import UserError

if TYPE_CHECKING:
    from harness.tasks import Suite

__all__ = ["ENTRY_POINT_GROUP", "SUITES", "available_suites", "get_suite"]

ENTRY_POINT_GROUP = "ampbench.suites"

SUITES: dict[str, str] = {
    "snitch": "suites.snitch.suite:SnitchSuite",
    "swe": "suites.swe.suite:SweSuite",
}


def available_suites() -> dict[str, str]:
    """Every registered suite name and its import path, built-ins first.

    A built-in name wins over an entry point of the same name, so installing a
    plugin can never silently replace a suite that results are compared against.
    """
    found = dict(SUITES)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        found.setdefault(ep.name, ep.value)
    return found


def _load(name: str, path: str) -> type:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"suite {name!r} is not installed: cannot import {module_name} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise UserError(f"suite {name!r} is not installed: {module_name} has no {attr!r}") from exc


def get_suite(name: str, **options: Any) -> Suite:
    """Build the suite registered as `name`, passing `options` to its constructor."""
    # A built-in name wins over any entry point: no need to scan installed packages for it.
    path = SUITES.get(name)
    if path is None:
        registry = available_suites()
        path = registry.get(name)
        if path is None:
            raise UserError(f"unknown suite {name!r} (available: {', '.join(registry)})")
    cls = _load(name, path)
    # Check the options against the signature first: a TypeError raised inside
    # the constructor is a bug and must not be reported as the user's mistake.
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        accepted = ", ".join(inspect.signature(cls).parameters) or "none"
        raise UserError(f"suite {name!r}: {exc} (accepted options: {accepted})") from exc
    return cls(**options)
