"""Ranges of months and quarters."""

from __future__ import annotations

from datetime import date

from calendarkit.months import add_months


def quarter_of(d: date) -> int:
    return (d.month - 1) // 3 + 1


def quarter_start(d: date) -> date:
    return date(d.year, 3 * (quarter_of(d) - 1) + 1, 1)


def month_range(start: date, end: date) -> list[date]:
    """First days of every month from the month of `start` to the month of `end`, inclusive."""
    if end < start:
        raise ValueError("end is before start")
    current = start.replace(day=1)
    last = end.replace(day=1)
    months = []
    while current <= last:
        months.append(current)
        current = add_months(current, 1)
    return months
