"""Prices to costs: integer micro-credits, one rounding (upwards) at the end, never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from faregate.billing.pricing import (
    PER,
    UnpricedUnit,
    cost_of,
    to_usd,
    usd_decimal,
    worst_case,
)
from faregate.billing.types import Price, Usage

# Micro-credits per million tokens.
PRICE = Price(input=1_000_000, output=2_000_000, cached_input=500_000)


def test_whole_tokens_cost_exactly() -> None:
    # 10 * 1 + 5 * 2 micro-credits: no rounding needed.
    assert cost_of(PRICE, Usage(prompt_tokens=10, completion_tokens=5)) == 20


def test_zero_usage_costs_nothing() -> None:
    assert cost_of(PRICE, Usage(prompt_tokens=0, completion_tokens=0)) == 0


def test_rounds_up_once_at_the_end() -> None:
    # Each token costs 0.3 micro-credits: rounding each part up would give 1 + 1 = 2,
    # rounding once gives ceil(0.3 + 0.3) = 1.
    price = Price(input=300_000, output=300_000)
    assert cost_of(price, Usage(prompt_tokens=1, completion_tokens=1)) == 1
    # ceil(3 * 0.3 + 4 * 0.3) = ceil(2.1) = 3
    assert cost_of(price, Usage(prompt_tokens=3, completion_tokens=4)) == 3
    # Exactly an integer: no extra micro-credit.
    assert cost_of(price, Usage(prompt_tokens=5, completion_tokens=5)) == 3  # ceil(3.0)
    assert cost_of(price, Usage(prompt_tokens=10, completion_tokens=0)) == 3


def test_any_fraction_rounds_up() -> None:
    price = Price(input=1, output=0)  # one millionth of a micro-credit per token
    assert cost_of(price, Usage(prompt_tokens=1, completion_tokens=0)) == 1
    assert cost_of(price, Usage(prompt_tokens=PER, completion_tokens=0)) == 1
    assert cost_of(price, Usage(prompt_tokens=PER + 1, completion_tokens=0)) == 2


def test_cost_is_an_int_even_for_huge_usage() -> None:
    price = Price(input=2_500_000, output=10_000_000, cached_input=1_250_000)
    usage = Usage(prompt_tokens=10**12, completion_tokens=10**12 + 1, cached_tokens=3)
    cost = cost_of(price, usage)
    assert isinstance(cost, int)
    exact = (10**12 - 3) * 2_500_000 + 3 * 1_250_000 + (10**12 + 1) * 10_000_000
    assert cost == -(-exact // PER)


def test_cached_tokens_at_cached_price() -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=40)
    # 60 uncached * 1 + 40 cached * 0.5 + 10 * 2
    assert cost_of(PRICE, usage) == 60 + 20 + 20


def test_cached_price_rounding_happens_once() -> None:
    # One cached token at 0.5 plus one uncached at 1: ceil(1.5) = 2, not 1 + ceil(0.5) twice.
    usage = Usage(prompt_tokens=2, completion_tokens=0, cached_tokens=1)
    assert cost_of(PRICE, usage) == 2
    usage = Usage(prompt_tokens=3, completion_tokens=0, cached_tokens=2)
    assert cost_of(PRICE, usage) == 2  # 1 + 0.5 + 0.5


def test_cached_tokens_capped_at_prompt_tokens() -> None:
    # More cached than prompt tokens reported: every prompt token is cached, no more.
    capped = Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=500)
    all_cached = Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=100)
    assert cost_of(PRICE, capped) == cost_of(PRICE, all_cached) == 50 + 20


def test_negative_cached_tokens_count_as_none() -> None:
    weird = Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=-50)
    assert cost_of(PRICE, weird) == cost_of(PRICE, Usage(100, 10)) == 120


def test_missing_cached_price_charges_the_input_price() -> None:
    price = Price(input=1_000_000, output=2_000_000)
    cached = Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=60)
    assert cost_of(price, cached) == cost_of(price, Usage(100, 10)) == 120


def test_zero_cached_price_is_free_not_missing() -> None:
    price = Price(input=1_000_000, output=2_000_000, cached_input=0)
    usage = Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=60)
    assert cost_of(price, usage) == 40 + 20


def test_reasoning_tokens_are_not_billed_twice() -> None:
    # Reasoning tokens are part of completion_tokens; they add nothing on top.
    with_reasoning = Usage(prompt_tokens=10, completion_tokens=50, reasoning_tokens=30)
    assert cost_of(PRICE, with_reasoning) == cost_of(PRICE, Usage(10, 50)) == 110


def test_estimated_flag_does_not_change_the_cost() -> None:
    assert cost_of(PRICE, Usage(10, 5, estimated=True)) == cost_of(PRICE, Usage(10, 5))


def test_worst_case_exact_and_rounded_up() -> None:
    assert worst_case(PRICE, 100, 1000) == 100 + 2000
    price = Price(input=300_000, output=300_000)
    assert worst_case(price, 1, 1) == 1  # ceil(0.6), rounded once
    assert worst_case(price, 1, 3) == 2  # ceil(1.2)
    assert worst_case(price, 0, 0) == 0


def test_worst_case_ignores_the_cached_discount() -> None:
    # The hold assumes every prompt token is uncached.
    price = Price(input=1_000_000, output=2_000_000, cached_input=1)
    assert worst_case(price, 100, 10) == 120


@pytest.mark.parametrize(
    ("prompt", "completion", "cached"),
    [(0, 0, 0), (1, 1, 0), (100, 10, 40), (100, 1000, 100), (7, 3, 9), (999, 1, 1)],
)
def test_cost_never_exceeds_worst_case(prompt: int, completion: int, cached: int) -> None:
    for price in (PRICE, Price(input=333_333, output=777_777), Price(input=1, output=1)):
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
        assert cost_of(price, usage) <= worst_case(price, prompt, completion)


@pytest.mark.parametrize(
    ("micro", "rate", "usd"),
    [
        (0, 1_000_000, "0.000000"),
        (1, 1_000_000, "0.000001"),
        (1_234_567, 1_000_000, "1.234567"),
        (10_000_000, 1_000_000, "10.000000"),
        (999_999, 1_000_000, "0.999999"),
        # 1000 micro-credits per USD: one micro-credit is a thousandth of a dollar.
        (1, 1_000, "0.001000"),
        (2_500, 1_000, "2.500000"),
        # 3 per USD: 1/3 = 0.333333... truncated at six places, no float.
        (1, 3, "0.333333"),
        (2, 3, "0.666666"),
        (10**18, 1_000_000, "1000000000000.000000"),
    ],
)
def test_to_usd(micro: int, rate: int, usd: str) -> None:
    assert to_usd(micro, rate) == usd


@pytest.mark.parametrize(
    ("micro", "rate", "usd"),
    [
        (123, 1_000_000, "0.000123"),
        (0, 1_000_000, "0"),
        (1, 1_000_000, "0.000001"),
        (1_500_000, 1_000_000, "1.5"),
        (10**15, 1_000_000, "1000000000"),
        (7, 10**9, "0.000000007"),
        (1, 3, "0.333333333333"),
        (2, 3, "0.666666666667"),
    ],
)
def test_usd_decimal_is_exact_without_exponent(micro: int, rate: int, usd: str) -> None:
    assert usd_decimal(micro, rate) == usd


# -- reasoning tokens and the other meters ---------------------------------------------


def test_reasoning_price_bills_reasoning_tokens_apart() -> None:
    price = Price(input=1_000_000, output=2_000_000, reasoning=3_000_000)
    usage = Usage(prompt_tokens=10, completion_tokens=50, reasoning_tokens=30)
    assert cost_of(price, usage) == 10 + 20 * 2 + 30 * 3
    # More reasoning than completion tokens reported: no more than the completion is billed.
    odd = Usage(prompt_tokens=0, completion_tokens=5, reasoning_tokens=9)
    assert cost_of(price, odd) == 15


def test_worst_case_takes_the_dearer_of_output_and_reasoning() -> None:
    price = Price(input=0, output=1_000_000, reasoning=4_000_000)
    assert worst_case(price, 0, 10) == 40
    cheap = Price(input=0, output=4_000_000, reasoning=1_000_000)
    assert worst_case(cheap, 0, 10) == 40


IMAGES = Price.model_validate(
    {"image": 40_000, "images": {"1792x1024": 60_000, "hd": 70_000, "1792x1024/hd": 80_000}}
)


@pytest.mark.parametrize(
    ("meter", "each"),
    [
        ("images", 40_000),
        ("images:1024x1024", 40_000),  # a size the table lacks: the flat price
        ("images:1792x1024", 60_000),
        ("images:1792x1024/hd", 80_000),
        ("images:1024x1024/hd", 70_000),  # the quality alone
        ("images:1792x1024/standard", 60_000),  # the size alone
    ],
)
def test_images_by_size_and_quality(meter: str, each: int) -> None:
    assert cost_of(IMAGES, Usage(0, 0, units=((meter, 3),))) == 3 * each
    assert worst_case(IMAGES, units=((meter, 3),)) == 3 * each


def test_a_price_of_media_only_bills_tokens_at_zero() -> None:
    assert (IMAGES.input, IMAGES.output) == (0, 0)
    assert cost_of(IMAGES, Usage(1000, 1000, units=(("images", 1),))) == 40_000


def test_durations_in_milliseconds_priced_per_second() -> None:
    price = Price.model_validate({"audio_second": 100, "video_second": 3, "characters": 15})
    assert cost_of(price, Usage(0, 0, units=(("audio_ms", 12_345),))) == 1235  # ceil(1234.5)
    # 1 ms of video at 3 per second is 0.003: rounded up once, with the characters.
    usage = Usage(0, 0, units=(("video_ms", 1), ("characters", 1)))
    assert cost_of(price, usage) == 1  # ceil(0.003 + 0.000015)
    assert cost_of(price, Usage(0, 0, units=(("characters", 2_000_000),))) == 30


def test_video_by_resolution() -> None:
    price = Price.model_validate({"video_second": 100_000, "video_seconds": {"1920x1080": 250_000}})
    assert cost_of(price, Usage(0, 0, units=(("video_ms:1920x1080", 8_000),))) == 2_000_000
    assert cost_of(price, Usage(0, 0, units=(("video_ms:1280x720", 8_000),))) == 800_000


def test_tokens_and_units_round_once_together() -> None:
    price = Price.model_validate({"input": 500_000, "output": 0, "audio_second": 1})
    # 1 token at 0.5 plus 500 ms at 0.001 each: ceil(0.5 + 0.5) = 1, not 1 + 1.
    assert cost_of(price, Usage(1, 0, units=(("audio_ms", 500),))) == 1


@pytest.mark.parametrize("meter", ["images", "video_ms:1280x720", "furlongs", "audio_ms:x"])
def test_a_unit_the_price_does_not_set_is_refused(meter: str) -> None:
    with pytest.raises(UnpricedUnit):
        cost_of(PRICE, Usage(0, 0, units=((meter, 1),)))
    with pytest.raises(UnpricedUnit):
        worst_case(PRICE, units=((meter, 1),))


def test_zero_units_need_no_price() -> None:
    assert cost_of(PRICE, Usage(10, 5, units=(("images", 0),))) == 20


def test_units_from_json_pairs() -> None:
    usage = Usage(0, 0, units=[["images", 1], ["images", 2]])  # type: ignore[arg-type]
    assert usage.units == (("images", 3),)


@pytest.mark.parametrize(
    "body",
    [
        {"image": 1.5},
        {"image": -1},
        {"images": {"1024x1024": "40"}},
        {"images": {"": 1}},
        {"input": 1},  # output still required once a token price is given
        {"video_seconds": [1]},
        {"speed": 1},
    ],
)
def test_bad_prices_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Price.model_validate(body)


def test_prices_stay_hashable_and_comparable() -> None:
    again = Price.model_validate(
        {"image": 40_000, "images": {"1792x1024": 60_000, "hd": 70_000, "1792x1024/hd": 80_000}}
    )
    assert again == IMAGES and hash(again) == hash(IMAGES)
    assert hash(PRICE) != hash(IMAGES)


def _reference_usd(micro: int, rate: int) -> str:
    """The quotient by Decimal division, rounded half-even to 12 places, without exponent."""
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(micro) / Decimal(rate)
        if value.as_tuple().exponent < -12:  # type: ignore[operator]
            value = value.quantize(Decimal(1).scaleb(-12), ROUND_HALF_EVEN)
        text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@given(
    st.integers(min_value=-(10**16), max_value=10**16),
    st.sampled_from([1, 10, 1000, 10**6, 10**12, 10**13, 3, 7, 1_000_003]),
)
def test_usd_decimal_matches_decimal_division(micro: int, rate: int) -> None:
    """The integer path for powers of ten and the Decimal path agree with plain division."""
    assert usd_decimal(micro, rate) == _reference_usd(micro, rate)
