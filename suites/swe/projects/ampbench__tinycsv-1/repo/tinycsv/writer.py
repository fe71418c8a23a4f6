"""Formatting of CSV records."""

from __future__ import annotations

from collections.abc import Iterable


def _needs_quotes(field: str, delimiter: str, quote: str) -> bool:
    return field == "" or any(c in field for c in (delimiter, quote, "\n", "\r"))


def format_row(fields: Iterable[object], delimiter: str = ",", quote: str = '"') -> str:
    """Join fields into one record, quoting where needed.

    Empty strings are quoted so that a record of one empty field is not an
    empty line.
    """
    out = []
    for value in fields:
        text = "" if value is None else str(value)
        if _needs_quotes(text, delimiter, quote):
            text = quote + text.replace(quote, quote * 2) + quote
        out.append(text)
    return delimiter.join(out)
