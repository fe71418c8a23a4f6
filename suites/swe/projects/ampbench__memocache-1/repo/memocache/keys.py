"""Cache keys for memoized calls."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

# Separates positional from keyword arguments inside a key, so that f(1, 2)
# and f(1, b=2) can never collide.
_KWARGS_MARK = object()


def make_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
    """Build a hashable key for one call.

    Raises TypeError for unhashable arguments, like functools.lru_cache.
    """
    key = args
    hash(key)
    return key
