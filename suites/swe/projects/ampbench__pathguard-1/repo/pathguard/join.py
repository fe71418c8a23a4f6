"""Joining untrusted relative paths onto a trusted root."""

from __future__ import annotations

import os


class UnsafePathError(ValueError):
    """The joined path would leave the root directory."""


def safe_join(root: str, *parts: str) -> str:
    """Join `parts` onto `root` and return the normalised absolute path.

    Raises UnsafePathError when the result is not inside `root` (absolute
    parts, or `..` segments that climb out of it). The root itself is allowed.
    """
    if not parts:
        raise ValueError("safe_join needs at least one path part")
    for part in parts:
        if "\x00" in part:
            raise UnsafePathError("path contains a NUL byte")
    base = os.path.normpath(os.path.abspath(root))
    candidate = os.path.normpath(os.path.join(base, *parts))
    if not candidate.startswith(base):
        raise UnsafePathError(f"{os.path.join(*parts)!r} leaves {base!r}")
    return candidate
