"""memocache: a memoizing decorator with an optional time-to-live."""

from memocache.core import CacheInfo, memoize
from memocache.keys import make_key

__all__ = ["CacheInfo", "make_key", "memoize"]
