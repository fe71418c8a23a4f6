from datetime import date

import pytest

from calendarkit import add_months, days_in_month, is_leap_year


@pytest.mark.parametrize("year,leap", [(2024, True), (2023, False), (1900, False), (2000, True)])
def test_is_leap_year(year, leap):
    assert is_leap_year(year) is leap


def test_days_in_month():
    assert days_in_month(2023, 2) == 28
    assert days_in_month(2024, 2) == 29
    assert days_in_month(2024, 4) == 30


def test_days_in_month_rejects_bad_month():
    with pytest.raises(ValueError):
        days_in_month(2024, 13)


def test_add_one_month():
    assert add_months(date(2024, 3, 15), 1) == date(2024, 4, 15)


def test_add_months_clamps_to_month_end():
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)


def test_add_months_backwards():
    assert add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)
    assert add_months(date(2024, 3, 10), -5) == date(2023, 10, 10)


def test_add_months_across_a_year():
    assert add_months(date(2023, 5, 1), 14) == date(2024, 7, 1)
