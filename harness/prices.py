"""Cost of an exchange from its normalised token counts and `prices.yaml`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

# Providers that serve another provider's models under the same names.
_PRICE_FAMILY = {"openai-responses": "openai", "sim": None, "sim-anthropic": None, "sim-responses": None}


@functools.cache
def _table() -> dict[str, dict[str, dict[str, float]]]:
    return yaml.safe_load((Path(__file__).with_name("prices.yaml")).read_text(encoding="utf-8"))


def price_for(provider: str, model: str) -> dict[str, float] | None:
    """Per-million-token prices of a model, matching dated snapshots by prefix; None if unknown."""
    family = _PRICE_FAMILY.get(provider, provider)
    if family is None:
        return None
    models = _table().get(family, {})
    if model in models:
        return models[model]
    # Dated snapshots (claude-sonnet-4-5-20250929, gpt-4o-2024-08-06) share their base price.
    for name in sorted(models, key=len, reverse=True):
        if model.startswith(name + "-"):
            return models[name]
    return None


def cost_usd(prices: dict[str, float] | None, usage: Any) -> float | None:
    """Cost of one exchange; None when prices or token counts are unknown."""
    if prices is None or usage is None:
        return None
    get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, None)
    total_in, out = get("input_tokens"), get("output_tokens")
    if total_in is None and out is None:
        return None
    cached = get("cache_read_input_tokens") or 0
    written = get("cache_creation_input_tokens") or 0
    fresh = max(0, (total_in or 0) - cached - written)
    dollars = (
        fresh * prices["input"]
        + cached * prices.get("cached", prices["input"])
        + written * prices.get("cache_write", prices["input"])
        + (out or 0) * prices["output"]
    )
    return dollars / 1_000_000
