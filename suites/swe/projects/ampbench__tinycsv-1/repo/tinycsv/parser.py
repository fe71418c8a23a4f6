"""Parsing of CSV records."""

from __future__ import annotations


class ParseError(ValueError):
    """The line is not a well-formed record."""


def parse_line(line: str, delimiter: str = ",", quote: str = '"') -> list[str]:
    """Split one record into its fields.

    Quoted fields may contain the delimiter and doubled quote characters.
    An empty line has no fields.
    """
    if len(delimiter) != 1 or len(quote) != 1:
        raise ValueError("delimiter and quote must be single characters")
    if not line:
        return []

    fields: list[str] = []
    field = ""
    in_quotes = False
    i = 0
    while i < len(line):
        ch = line[i]
        if in_quotes:
            if ch == quote:
                if i + 1 < len(line) and line[i + 1] == quote:
                    field += quote
                    i += 1
                else:
                    in_quotes = False
            else:
                field += ch
        elif ch == quote:
            if field:
                raise ParseError(f"unexpected quote at column {i + 1}")
            in_quotes = True
        elif ch == delimiter:
            fields.append(field)
            field = ""
        else:
            field += ch
        i += 1

    if in_quotes:
        raise ParseError("unterminated quoted field")
    if field:
        fields.append(field)
    return fields


def parse(text: str, delimiter: str = ",", quote: str = '"') -> list[list[str]]:
    """Parse every non-blank line of `text`."""
    return [parse_line(line, delimiter, quote) for line in text.splitlines() if line.strip()]
