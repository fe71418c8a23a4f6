"""Parsing quantities like "12.5 km" and requests like "12.5 km in mi"."""

from __future__ import annotations

import re

from unitconv.convert import convert

_QUANTITY = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-z]+)\s*$")
_REQUEST = re.compile(r"^(.*?)\s+(?:in|to)\s+([A-Za-z]+)\s*$")


def parse_quantity(text: str) -> tuple[float, str]:
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    return float(match.group(1)), match.group(2)


def _format_number(x: float) -> str:
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def convert_text(text: str) -> str:
    """Answer a request like '90 min in h' with '1.5 h'."""
    match = _REQUEST.match(text)
    if not match:
        raise ValueError(f"expected '<value> <unit> in <unit>', got {text!r}")
    value, unit = parse_quantity(match.group(1))
    target = match.group(2)
    return f"{_format_number(convert(value, unit, target))} {target}"
