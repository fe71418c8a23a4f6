"""calendarkit: month arithmetic for datetime.date."""

from calendarkit.months import add_months, days_in_month, is_leap_year
from calendarkit.ranges import month_range, quarter_of, quarter_start

__all__ = ["add_months", "days_in_month", "is_leap_year", "month_range", "quarter_of", "quarter_start"]
