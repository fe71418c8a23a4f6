"""A least-recently-used cache on top of OrderedDict."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Optional


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class LRUCache:
    """A mapping of at most `capacity` entries; the least recently used one goes first.

    Entries are kept in use order: oldest first, most recently used last.
    """

    def __init__(self, capacity: int, on_evict: Optional[Callable[[Hashable, Any], None]] = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.stats = Stats()
        self._on_evict = on_evict
        self._data: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, default: Any = None) -> Any:
        """Return the value for `key` (a use of the entry), or `default`."""
        if key not in self._data:
            self.stats.misses += 1
            return default
        self.stats.hits += 1
        return self._data[key]

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """Return the value without counting it as a use."""
        return self._data.get(key, default)

    def put(self, key: Hashable, value: Any) -> None:
        """Insert or replace `key` (a use of the entry), evicting if full."""
        if key in self._data:
            self._data.move_to_end(key)
        self._data[key] = value
        while len(self._data) > self.capacity:
            old_key, old_value = self._data.popitem(last=False)
            self.stats.evictions += 1
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)

    def pop(self, key: Hashable, default: Any = None) -> Any:
        return self._data.pop(key, default)

    def keys(self) -> list[Hashable]:
        """Keys from least to most recently used."""
        return list(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.keys())
