"""The currencies moneybag knows about."""

from __future__ import annotations

from dataclasses import dataclass


class UnknownCurrency(KeyError):
    """A currency code that is not in CURRENCIES."""


@dataclass(frozen=True)
class Currency:
    code: str
    """ISO 4217 code, e.g. "EUR"."""
    symbol: str
    """Printed before the amount."""


CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        Currency("USD", "$"),
        Currency("EUR", "€"),
        Currency("GBP", "£"),
        Currency("CHF", "CHF "),
        Currency("JPY", "¥"),
    )
}


def get_currency(code: str) -> Currency:
    try:
        return CURRENCIES[code.upper()]
    except KeyError:
        raise UnknownCurrency(code) from None
