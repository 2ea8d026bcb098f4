"""Prices to costs: integer micro-credits, rounded up, never floats."""

from __future__ import annotations

from faregate.billing.types import Price, Usage

PER = 1_000_000  # prices are per million tokens


def _ceil_div(num: int, den: int) -> int:
    return -(-num // den)


def cost_of(price: Price, usage: Usage) -> int:
    """The exact cost of `usage` at `price`: one rounding, upwards, at the end."""
    cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
    cached_price = price.input if price.cached_input is None else price.cached_input
    total = (
        (usage.prompt_tokens - cached) * price.input
        + cached * cached_price
        + usage.completion_tokens * price.output
    )
    return _ceil_div(total, PER)


def worst_case(price: Price, prompt_upper: int, max_output: int) -> int:
    """The hold: every prompt token uncached and every allowed output token produced."""
    return _ceil_div(prompt_upper * price.input + max_output * price.output, PER)


def to_usd(micro_credits: int, micro_credits_per_usd: int) -> str:
    """A decimal string in USD for display headers (no float arithmetic)."""
    whole, frac = divmod(micro_credits * 1_000_000 // micro_credits_per_usd, 1_000_000)
    return f"{whole}.{frac:06d}"
