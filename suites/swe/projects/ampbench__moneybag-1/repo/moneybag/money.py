"""The Money value type."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Union

from moneybag.currency import Currency, get_currency

Number = Union[int, str, float, Decimal]

CENT = Decimal("0.01")


class CurrencyMismatch(TypeError):
    """Arithmetic between amounts of different currencies."""


def _to_decimal(value: Number) -> Decimal:
    # Floats go through their shortest repr, so Money(2.675) means "2.675"
    # and not the binary value 2.67499999...
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


class Money:
    """An amount of one currency, rounded half-up to the currency's smallest unit."""

    __slots__ = ("amount", "currency")

    def __init__(self, amount: Number, currency: Union[str, Currency] = "USD") -> None:
        self.currency = get_currency(currency) if isinstance(currency, str) else currency
        self.amount = _to_decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)

    def _check(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency.code != self.currency.code:
            raise CurrencyMismatch(f"{self.currency.code} and {other.currency.code}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._check(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._check(other).amount, self.currency)

    def __mul__(self, factor: Number) -> Money:
        return Money(self.amount * _to_decimal(factor), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Money)
            and other.currency.code == self.currency.code
            and other.amount == self.amount
        )

    def __hash__(self) -> int:
        return hash((self.currency.code, self.amount))

    def __repr__(self) -> str:
        return f"Money('{self.amount}', '{self.currency.code}')"

    def allocate(self, ratios: Sequence[int]) -> list[Money]:
        """Split into parts proportional to `ratios` without losing a cent.

        The smallest units left over after rounding down go to the first
        parts, one each.
        """
        if not ratios or any(r < 0 for r in ratios) or sum(ratios) == 0:
            raise ValueError("ratios must be non-negative and not all zero")
        units = int(self.amount * 100)
        total = sum(ratios)
        shares = [units * r // total for r in ratios]
        for i in range(units - sum(shares)):
            shares[i] += 1
        return [Money(Decimal(s) / 100, self.currency) for s in shares]
