"""The memoize decorator."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from memocache.keys import make_key


@dataclass(frozen=True)
class CacheInfo:
    hits: int
    misses: int
    size: int


def memoize(ttl: float | None = None, clock: Callable[[], float] = time.monotonic):
    """Cache results per call arguments for `ttl` seconds (None: forever)."""
    if ttl is not None and ttl <= 0:
        raise ValueError("ttl must be positive or None")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        entries: dict[Hashable, tuple[float, Any]] = {}
        stats = {"hits": 0, "misses": 0}

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = make_key(args, kwargs)
            now = clock()
            entry = entries.get(key)
            if entry is not None:
                stored_at, value = entry
                if ttl is None or now - stored_at < ttl:
                    stats["hits"] += 1
                    return value
                del entries[key]
            stats["misses"] += 1
            value = func(*args, **kwargs)
            entries[key] = (now, value)
            return value

        def cache_info() -> CacheInfo:
            return CacheInfo(stats["hits"], stats["misses"], len(entries))

        def cache_clear() -> None:
            entries.clear()
            stats["hits"] = stats["misses"] = 0

        wrapper.cache_info = cache_info  # type: ignore[attr-defined]
        wrapper.cache_clear = cache_clear  # type: ignore[attr-defined]
        return wrapper

    return decorate
