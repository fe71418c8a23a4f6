"""lrukit: a least-recently-used cache."""

from lrukit.cache import LRUCache, Stats

__all__ = ["LRUCache", "Stats"]
