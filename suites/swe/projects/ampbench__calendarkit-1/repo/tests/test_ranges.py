from datetime import date

import pytest

from calendarkit import month_range, quarter_of, quarter_start


def test_quarter_of():
    assert [quarter_of(date(2024, m, 1)) for m in (1, 3, 4, 9, 10)] == [1, 1, 2, 3, 4]


def test_quarter_start():
    assert quarter_start(date(2024, 8, 17)) == date(2024, 7, 1)


def test_month_range_within_a_year():
    assert month_range(date(2024, 2, 10), date(2024, 4, 1)) == [
        date(2024, 2, 1),
        date(2024, 3, 1),
        date(2024, 4, 1),
    ]


def test_month_range_rejects_reversed_dates():
    with pytest.raises(ValueError):
        month_range(date(2024, 5, 1), date(2024, 4, 1))
