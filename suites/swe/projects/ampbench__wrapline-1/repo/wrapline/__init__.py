"""wrapline: greedy word wrapping."""

from wrapline.indent import hanging, indent
from wrapline.wrap import fill, wrap

__all__ = ["fill", "hanging", "indent", "wrap"]
