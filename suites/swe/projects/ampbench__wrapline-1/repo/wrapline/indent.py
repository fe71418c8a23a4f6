"""Indentation helpers built on wrap()."""

from __future__ import annotations

from wrapline.wrap import wrap


def indent(text: str, prefix: str) -> str:
    """Prefix every non-blank line of `text`."""
    return "\n".join(prefix + line if line.strip() else line for line in text.split("\n"))


def hanging(text: str, width: int, prefix: str = "- ") -> str:
    """Wrap `text` to `width` with `prefix` on the first line and spaces below it."""
    inner = width - len(prefix)
    if inner < 1:
        raise ValueError("prefix is wider than the line")
    pad = " " * len(prefix)
    lines = wrap(text, inner)
    return "\n".join((prefix if i == 0 else pad) + line for i, line in enumerate(lines))
