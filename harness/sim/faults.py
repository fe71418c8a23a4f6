"""Deterministic fault injection.

Whether a request fails, and how, is a pure function of the seed, the
canonical request body, the repeat number and the attempt number, so a run
with faults replays the same failures every time, while each retry of the
same body gets a fresh draw. From the fourth attempt on nothing fails: a
client with four attempts always finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.sim.view import digest

FaultKind = Literal["rate_limit", "server_error", "overloaded", "slow", "drop", "stream_drop"]

FAULT_KINDS: tuple[FaultKind, ...] = (
    "rate_limit",
    "server_error",
    "overloaded",
    "slow",
    "drop",
    "stream_drop",
)
"""All kinds, in the order the draw indexes them."""

FAULT_HELP = {
    "rate_limit": "HTTP 429 with retry-after: 1 and retry-after-ms: 20",
    "server_error": "HTTP 500 (api_error / server_error)",
    "overloaded": "HTTP 529 overloaded_error (Anthropic) or 503 (OpenAI)",
    "slow": "a 100-400 ms delay, then a normal response",
    "drop": "the connection closes after the request is read, with no response",
    "stream_drop": "a streamed response stops halfway and the connection closes",
}

# At this attempt number (0-based, like x-stainless-retry-count) and above no fault is injected.
LAST_FAULTY_RETRY = 2


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    delay_s: float = 0.0
    """For `slow`: how long to wait before answering."""


def parse_kinds(text: str | None) -> tuple[FaultKind, ...]:
    """`rate_limit,drop` -> the kinds; None or empty -> all. Raises ValueError naming the valid kinds."""
    if not text:
        return FAULT_KINDS
    chosen: list[FaultKind] = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        if name not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {name!r} (available: {', '.join(FAULT_KINDS)})")
        chosen.append(name)  # type: ignore[arg-type]  # checked just above
    return tuple(dict.fromkeys(chosen))


@dataclass(frozen=True)
class FaultPlan:
    """A fault rate, a seed and the kinds to draw from."""

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[FaultKind, ...] = FAULT_KINDS

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        unknown = [k for k in self.kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown} (available: {', '.join(FAULT_KINDS)})")

    def decide(self, body_key: bytes, *, attempt: int, streamed: bool) -> Fault | None:
        """The fault for one request, or None. `body_key` hashes the canonical body and repeat."""
        if self.rate <= 0 or attempt > LAST_FAULTY_RETRY:
            return None
        kinds = [k for k in self.kinds if streamed or k != "stream_drop"]
        if not kinds:
            return None
        draw = digest(str(self.seed).encode(), body_key, str(attempt).encode())
        if int.from_bytes(draw[:8], "big") / 2**64 >= self.rate:
            return None
        kind = kinds[int.from_bytes(draw[8:12], "big") % len(kinds)]
        delay = 0.1 + (int.from_bytes(draw[12:16], "big") % 301) / 1000 if kind == "slow" else 0.0
        return Fault(kind, delay)
