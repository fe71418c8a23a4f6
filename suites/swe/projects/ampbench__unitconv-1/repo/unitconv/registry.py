"""Known units and how they relate to their dimension's base unit."""

from __future__ import annotations

from dataclasses import dataclass


class UnknownUnit(KeyError):
    """A unit symbol that is not registered."""


@dataclass(frozen=True)
class Unit:
    symbol: str
    dimension: str
    factor: float
    """Size of one unit in the dimension's base unit: value_in_base = value * factor."""


def _units(*units: Unit) -> dict[str, Unit]:
    return {u.symbol: u for u in units}


UNITS: dict[str, Unit] = _units(
    # length, base: metre
    Unit("m", "length", 1.0),
    Unit("km", "length", 1000.0),
    Unit("cm", "length", 0.01),
    Unit("mm", "length", 0.001),
    Unit("in", "length", 0.0254),
    Unit("ft", "length", 0.3048),
    Unit("mi", "length", 1609.344),
    # mass, base: kilogram
    Unit("kg", "mass", 1.0),
    Unit("g", "mass", 0.001),
    Unit("lb", "mass", 0.45359237),
    # time, base: second
    Unit("s", "time", 1.0),
    Unit("min", "time", 60.0),
    Unit("h", "time", 3600.0),
    # temperature, base: kelvin
    Unit("K", "temperature", 1.0),
    Unit("C", "temperature", 1.0),
    Unit("F", "temperature", 5 / 9),
)


def get_unit(symbol: str) -> Unit:
    try:
        return UNITS[symbol]
    except KeyError:
        raise UnknownUnit(symbol) from None
