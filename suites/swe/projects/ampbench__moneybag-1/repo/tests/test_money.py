from decimal import Decimal

import pytest

from moneybag import CurrencyMismatch, Money, UnknownCurrency


def test_rounds_half_up_to_cents():
    assert Money("2.675").amount == Decimal("2.68")
    assert Money("2.665").amount == Decimal("2.67")
    assert Money("-2.675").amount == Decimal("-2.68")


def test_float_input_uses_its_decimal_repr():
    assert Money(2.675, "EUR").amount == Decimal("2.68")


def test_addition_and_subtraction():
    assert Money("1.10", "EUR") + Money("2.20", "EUR") == Money("3.30", "EUR")
    assert Money("1.00", "EUR") - Money("2.50", "EUR") == Money("-1.50", "EUR")


def test_multiplication_rounds():
    assert Money("10.00", "USD") * Decimal("0.075") == Money("0.75", "USD")
    assert 3 * Money("0.333", "USD") == Money("0.99", "USD")


def test_mixed_currencies_raise():
    with pytest.raises(CurrencyMismatch):
        Money(1, "USD") + Money(1, "EUR")


def test_unknown_currency():
    with pytest.raises(UnknownCurrency):
        Money(1, "XYZ")


def test_currency_code_is_case_insensitive():
    assert Money(5, "gbp") == Money(5, "GBP")


def test_allocate_keeps_every_cent():
    parts = Money("100.00", "EUR").allocate([1, 1, 1])
    assert parts == [Money("33.34", "EUR"), Money("33.33", "EUR"), Money("33.33", "EUR")]


def test_allocate_by_ratio():
    assert Money("0.05").allocate([70, 30]) == [Money("0.04"), Money("0.01")]


def test_allocate_rejects_bad_ratios():
    with pytest.raises(ValueError):
        Money(1).allocate([0, 0])
