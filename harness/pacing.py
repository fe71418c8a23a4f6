"""One request budget per provider, shared by every task run that calls it.

A `Pacer` is asked before every HTTP attempt (`admit`) and told of every
``retry-after`` a provider sends (`hold`). `RatePacer` keeps, per provider, a token
bucket of ``rpm`` requests per minute (a burst of at most one second's worth) and a
pause until the latest ``retry-after`` has passed: every task run that calls that
provider waits, not only the one that was told. In one process it is shared by the
run's clients; on a Ray cluster one lives in an actor that every node asks
(`harness.ray_executor`), so a cluster never calls a provider faster than one machine
would have been allowed to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Pacer(Protocol):
    async def admit(self, provider: str) -> None:
        """Return when one more request to `provider` may go."""
        ...

    def hold(self, provider: str, seconds: float) -> None:
        """`provider` said to wait `seconds` (retry-after): hold every request to it that long."""
        ...


class RatePacer:
    """Requests per minute per provider (None: no rate limit) and shared retry-after pauses."""

    def __init__(self, rpm: float | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rpm is not None and rpm <= 0:
            raise ValueError(f"requests per minute must be positive, got {rpm}")
        self.rate = rpm / 60.0 if rpm else None
        self.burst = max(1.0, self.rate) if self.rate else 0.0
        self.clock = clock
        self._tokens: dict[str, float] = {}
        self._stamp: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}
        self.admitted: dict[str, int] = {}
        """Requests let through, per provider."""

    def hold(self, provider: str, seconds: float) -> None:
        until = self.clock() + max(0.0, seconds)
        self._paused_until[provider] = max(self._paused_until.get(provider, 0.0), until)

    def delay(self, provider: str) -> float:
        """Seconds until a request to `provider` may go; 0 takes its token now."""
        now = self.clock()
        paused = self._paused_until.get(provider, 0.0) - now
        if paused > 0:
            return paused
        if self.rate is None:
            return 0.0
        tokens = self._tokens.get(provider, self.burst)
        tokens = min(self.burst, tokens + (now - self._stamp.get(provider, now)) * self.rate)
        self._stamp[provider] = now
        if tokens >= 1.0:
            self._tokens[provider] = tokens - 1.0
            return 0.0
        self._tokens[provider] = tokens
        return (1.0 - tokens) / self.rate

    async def admit(self, provider: str) -> None:
        # Asked again after each sleep: a retry-after may have come in meanwhile.
        while (wait := self.delay(provider)) > 0:
            await asyncio.sleep(wait)
        self.admitted[provider] = self.admitted.get(provider, 0) + 1
