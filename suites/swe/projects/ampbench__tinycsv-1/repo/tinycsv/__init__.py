"""tinycsv: parse and format single CSV records."""

from tinycsv.parser import ParseError, parse, parse_line
from tinycsv.writer import format_row

__all__ = ["ParseError", "format_row", "parse", "parse_line"]
__version__ = "0.3.0"
