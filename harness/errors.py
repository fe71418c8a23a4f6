"""The few exception types the harness raises on purpose.

`UserError` is bad input: the CLI prints its message on one line and exits
with code 2. `ProviderError` is a provider answer the loop cannot use after
retries. SDK exceptions are mapped to these in one place,
`harness.clients.base`.
"""

from __future__ import annotations


class AmpbenchError(Exception):
    """Base class of every error the harness raises deliberately."""


class UserError(AmpbenchError):
    """Bad input from the user: a wrong flag, a malformed file, a missing key."""


class ProviderError(AmpbenchError):
    """A provider request that failed for good (after retries, or not retryable)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class CassetteMiss(AmpbenchError):
    """A replayed request that no recorded interaction matches: the task fails, the run goes on."""


class CassetteDamaged(CassetteMiss):
    """A cassette file that exists but cannot be read: its task fails with the reason, nothing is recorded over it."""


class Interrupted(AmpbenchError):
    """Ctrl-C or SIGTERM stopped a run; what it wrote is kept and `--resume` finishes it (exit 130)."""
