"""Making single file names safe to store."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def sanitize_filename(name: str, replacement: str = "_", max_length: int = 255) -> str:
    """Replace characters that are unsafe in file names on common systems."""
    cleaned = _UNSAFE.sub(replacement, name).strip(" .")
    if not cleaned or cleaned in {".", ".."}:
        cleaned = replacement
    if cleaned.split(".")[0].upper() in _RESERVED:
        cleaned = replacement + cleaned
    return cleaned[:max_length]
