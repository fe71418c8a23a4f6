"""Human-readable money amounts."""

from __future__ import annotations

from moneybag.money import Money


def format_money(money: Money, grouping: bool = True) -> str:
    """Format as symbol and amount, e.g. '-$1,234.50'."""
    spec = ",.2f" if grouping else ".2f"
    sign = "-" if money.amount < 0 else ""
    return f"{sign}{money.currency.symbol}{abs(money.amount):{spec}}"
