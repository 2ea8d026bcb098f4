"""Prices to costs: integer micro-credits, one rounding (upwards) at the end, never floats."""

from __future__ import annotations

import pytest

from faregate.billing.pricing import PER, cost_of, to_usd, worst_case
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
