"""Summaries of a stream of records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional

from logstat.records import Record


@dataclass
class Summary:
    count: int = 0
    first: Optional[datetime] = None
    last: Optional[datetime] = None
    by_level: Counter = field(default_factory=Counter)
    by_hour: Counter = field(default_factory=Counter)
    """Events per UTC hour, keyed 'YYYY-MM-DD HH:00'."""

    @property
    def span(self) -> timedelta:
        if self.first is None or self.last is None:
            return timedelta(0)
        return self.last - self.first

    @property
    def busiest_hour(self) -> Optional[str]:
        if not self.by_hour:
            return None
        # Ties go to the earliest hour, so the answer does not depend on input order.
        return min(self.by_hour, key=lambda hour: (-self.by_hour[hour], hour))


def summarize(records: Iterable[Record]) -> Summary:
    summary = Summary()
    for record in records:
        summary.count += 1
        if summary.first is None or record.time < summary.first:
            summary.first = record.time
        if summary.last is None or record.time > summary.last:
            summary.last = record.time
        summary.by_level[record.level] += 1
        summary.by_hour[record.time.strftime("%Y-%m-%d %H:00")] += 1
    return summary


def render(summary: Summary) -> str:
    if summary.count == 0:
        return "no events"
    lines = [
        f"events: {summary.count}",
        f"first:  {summary.first:%Y-%m-%d %H:%M:%S} UTC",
        f"last:   {summary.last:%Y-%m-%d %H:%M:%S} UTC",
        f"span:   {summary.span}",
        "levels: " + ", ".join(f"{lvl} {n}" for lvl, n in sorted(summary.by_level.items())),
        f"busiest hour: {summary.busiest_hour} UTC",
    ]
    return "\n".join(lines)
