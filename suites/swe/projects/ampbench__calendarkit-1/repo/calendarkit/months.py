"""Calendar-month arithmetic."""

from __future__ import annotations

from datetime import date

_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_leap_year(year: int) -> bool:
    """Gregorian leap years: every 4th year, except centuries not divisible by 400."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    if not 1 <= month <= 12:
        raise ValueError(f"month must be in 1..12, got {month}")
    if month == 2 and is_leap_year(year):
        return 29
    return _DAYS[month - 1]


def add_months(d: date, n: int) -> date:
    """Move `n` calendar months from `d` (negative `n` moves backwards).

    The day is clamped to the last day of the target month, so
    2024-01-31 + 1 month is 2024-02-29.
    """
    total = d.month + n
    year = d.year + total // 12
    month = total % 12
    day = min(d.day, days_in_month(year, month))
    return date(year, month, day)
