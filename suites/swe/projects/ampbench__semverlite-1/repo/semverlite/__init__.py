"""semverlite: semantic versions and ranges."""

from semverlite.ranges import max_satisfying, satisfies
from semverlite.version import InvalidVersion, Version

__all__ = ["InvalidVersion", "Version", "max_satisfying", "satisfies"]
