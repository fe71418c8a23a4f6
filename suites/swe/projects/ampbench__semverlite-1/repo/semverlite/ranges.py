"""Range expressions: comparators joined by commas, caret and tilde ranges."""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from typing import Optional, Union

from semverlite.version import Version

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq, "": operator.eq}
_COMPARATOR = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*(\S+)$")


def _as_version(v: Union[str, Version]) -> Version:
    return v if isinstance(v, Version) else Version.parse(v)


def _matches(version: Version, comparator: str) -> bool:
    match = _COMPARATOR.match(comparator.strip())
    if not match:
        raise ValueError(f"bad comparator: {comparator!r}")
    op, bound_text = match.groups()
    bound = Version.parse(bound_text)
    if op == "^":
        upper = bound.bump("major") if bound.major > 0 else bound.bump("minor")
        return bound <= version < upper
    if op == "~":
        return bound <= version < bound.bump("minor")
    return _OPS[op or ""](version, bound)


def satisfies(version: Union[str, Version], spec: str) -> bool:
    """True when `version` matches every comma-separated comparator of `spec`."""
    v = _as_version(version)
    return all(_matches(v, part) for part in spec.split(",") if part.strip())


def max_satisfying(versions: Iterable[Union[str, Version]], spec: str) -> Optional[str]:
    """The highest of `versions` that satisfies `spec`, as a string, or None."""
    candidates = [_as_version(v) for v in versions]
    matching = [v for v in candidates if satisfies(v, spec)]
    return str(max(matching)) if matching else None
