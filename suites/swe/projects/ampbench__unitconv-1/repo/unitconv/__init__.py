"""unitconv: unit conversion."""

from unitconv.convert import IncompatibleUnits, convert
from unitconv.parse import convert_text, parse_quantity
from unitconv.registry import UNITS, Unit, UnknownUnit, get_unit

__all__ = [
    "UNITS",
    "IncompatibleUnits",
    "Unit",
    "UnknownUnit",
    "convert",
    "convert_text",
    "get_unit",
    "parse_quantity",
]
