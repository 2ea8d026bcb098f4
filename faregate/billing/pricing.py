"""Prices to costs: integer micro-credits, rounded up once at the end, never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import cache

from faregate.billing.types import Price, Units, Usage

PER = 1_000_000  # token and character prices are per million; the common denominator of all
MS_PER_SECOND = 1_000  # durations are counted in milliseconds, priced per second
USD_PLACES = 12  # decimals of a dollar amount whose exact quotient does not terminate


class UnpricedUnit(ValueError):
    """A usage counted in a meter (or a variant) the model's price does not set."""


def _ceil_div(num: int, den: int) -> int:
    return -(-num // den)


def unit_price(price: Price, meter: str) -> tuple[int, int]:
    """(price, scale) of one counted unit: its cost is count * price / scale micro-credits.
    `meter` may carry a variant (`images:1024x1024/hd`); a variant the table lacks falls back
    to the size alone, then the quality alone, then the meter's flat price."""
    base, _, variant = meter.partition(":")
    keys: tuple[str, ...] = ()
    if base == "images":
        table, flat, scale = price.images or {}, price.image, 1
        size, _, quality = variant.partition("/")
        if variant:
            keys = (variant, size, quality)
    elif base == "video_ms":
        table, flat, scale = price.video_seconds or {}, price.video_second, MS_PER_SECOND
        keys = (variant,)
    elif base == "audio_ms" and not variant:
        table, flat, scale = {}, price.audio_second, MS_PER_SECOND
    elif base == "characters" and not variant:
        table, flat, scale = {}, price.characters, PER
    else:
        raise UnpricedUnit(f"no meter {meter!r}")
    for key in keys:
        if key and key in table:
            return table[key], scale
    if flat is None:
        raise UnpricedUnit(f"the price sets nothing for {meter!r}")
    return flat, scale


def _units_total(price: Price, units: Units) -> int:
    """The units' cost in millionths of a micro-credit."""
    total = 0
    for meter, count in units:
        if count:
            amount, scale = unit_price(price, meter)
            total += max(count, 0) * amount * (PER // scale)
    return total


def cost_of(price: Price, usage: Usage) -> int:
    """The exact cost of `usage` at `price`: one rounding, upwards, at the end. Reasoning
    tokens are part of the completion tokens: at the `reasoning` price when it is set, else
    at the output price (so they add nothing on top)."""
    cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
    cached_price = price.input if price.cached_input is None else price.cached_input
    reasoning = 0
    if price.reasoning is not None:
        reasoning = min(max(usage.reasoning_tokens, 0), max(usage.completion_tokens, 0))
    total = (
        (usage.prompt_tokens - cached) * price.input
        + cached * cached_price
        + (usage.completion_tokens - reasoning) * price.output
        + reasoning * (price.reasoning or 0)
        + (_units_total(price, usage.units) if usage.units else 0)
    )
    return _ceil_div(total, PER)


def worst_case(price: Price, prompt_upper: int = 0, max_output: int = 0, units: Units = ()) -> int:
    """The hold: every prompt token uncached, every allowed output token produced at the dearer
    of the output and reasoning prices, and every worst-case unit counted. Raises
    `UnpricedUnit` for a unit the price does not set, before anything is held."""
    output = max(price.output, price.reasoning or 0)
    return _ceil_div(
        prompt_upper * price.input
        + max_output * output
        + (_units_total(price, units) if units else 0),
        PER,
    )


@cache
def _decimal_places(rate: int) -> int | None:
    """k when `rate` is 10**k with k ≤ USD_PLACES (every quotient then terminates), else None."""
    places = len(str(rate)) - 1
    return places if rate == 10**places and places <= USD_PLACES else None


def usd_decimal(micro_credits: int, micro_credits_per_usd: int) -> str:
    """The amount in US dollars as an exact decimal numeral: no exponent, no trailing zeros
    (`123` micro-credits at the default rate is `0.000123`); a rate whose quotient does not
    terminate is rounded half-even to 12 decimals."""
    places = _decimal_places(micro_credits_per_usd)
    if places is not None:  # a power of ten (the default): integer arithmetic only
        whole, frac = divmod(abs(micro_credits), micro_credits_per_usd)
        sign = "-" if micro_credits < 0 else ""
        if frac == 0:
            return f"{sign}{whole}" if whole else "0"
        return f"{sign}{whole}.{frac:0{places}d}".rstrip("0")
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(micro_credits) / Decimal(micro_credits_per_usd)
        if value.as_tuple().exponent < -USD_PLACES:  # type: ignore[operator]
            value = value.quantize(Decimal(1).scaleb(-USD_PLACES), ROUND_HALF_EVEN)
        text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def to_usd(micro_credits: int, micro_credits_per_usd: int) -> str:
    """A decimal string in USD for display headers (no float arithmetic)."""
    whole, frac = divmod(micro_credits * 1_000_000 // micro_credits_per_usd, 1_000_000)
    return f"{whole}.{frac:06d}"
