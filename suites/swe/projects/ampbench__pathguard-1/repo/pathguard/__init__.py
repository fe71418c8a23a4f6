"""pathguard: keep untrusted paths inside a root directory."""

from pathguard.join import UnsafePathError, safe_join
from pathguard.names import sanitize_filename

__all__ = ["UnsafePathError", "safe_join", "sanitize_filename"]
