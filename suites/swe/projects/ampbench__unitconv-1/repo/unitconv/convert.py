"""Conversion between registered units."""

from __future__ import annotations

from unitconv.registry import get_unit


class IncompatibleUnits(ValueError):
    """The units measure different dimensions (e.g. metres and seconds)."""


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert `value` from one unit to another of the same dimension."""
    source = get_unit(from_unit)
    target = get_unit(to_unit)
    if source.dimension != target.dimension:
        raise IncompatibleUnits(f"cannot convert {source.dimension} to {target.dimension}")
    in_base = value * source.factor
    return in_base / target.factor
