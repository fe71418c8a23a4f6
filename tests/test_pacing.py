"""The shared request budget (harness/pacing.py), on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from harness.pacing import RatePacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_one_second_then_the_rate() -> None:
    clock = Clock()
    pacer = RatePacer(120, clock=clock)  # 2 per second, a burst of 2
    assert [pacer.delay("p") for _ in range(2)] == [0.0, 0.0]
    assert pacer.delay("p") == pytest.approx(0.5)
    clock.now += 0.5
    assert pacer.delay("p") == 0.0
    assert pacer.delay("other") == 0.0  # each provider its own bucket


def test_retry_after_holds_every_caller_of_that_provider_only() -> None:
    clock = Clock()
    pacer = RatePacer(None, clock=clock)  # no rate limit: only pauses
    assert pacer.delay("p") == 0.0
    pacer.hold("p", 3.0)
    pacer.hold("p", 1.0)  # a shorter one does not cut the longer pause
    assert pacer.delay("p") == pytest.approx(3.0)
    assert pacer.delay("q") == 0.0
    clock.now += 3.0
    assert pacer.delay("p") == 0.0


def test_admit_waits_and_counts() -> None:
    pacer = RatePacer(6000)  # 100 per second, a burst of 100

    async def go() -> None:
        await asyncio.gather(*(pacer.admit("p") for _ in range(105)))

    asyncio.run(go())
    assert pacer.admitted == {"p": 105}


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RatePacer(0)
