"""moneybag: decimal money amounts with currencies."""

from moneybag.currency import CURRENCIES, Currency, UnknownCurrency, get_currency
from moneybag.format import format_money
from moneybag.money import CurrencyMismatch, Money

__all__ = [
    "CURRENCIES",
    "Currency",
    "CurrencyMismatch",
    "Money",
    "UnknownCurrency",
    "format_money",
    "get_currency",
]
