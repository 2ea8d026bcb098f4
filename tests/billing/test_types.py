"""The money types: usage in named units and the settlement that records it."""

from __future__ import annotations

from faregate.billing.types import Settlement, Usage, units_of


def test_a_settlement_records_every_count_of_its_usage() -> None:
    usage = Usage(
        10,
        20,
        cached_tokens=4,
        reasoning_tokens=8,
        estimated=True,
        units=(("images:1024x1024", 2),),
    )
    assert Settlement.of(99, usage, "n") == Settlement(
        cost=99,
        prompt_tokens=10,
        completion_tokens=20,
        cached_tokens=4,
        reasoning_tokens=8,
        estimated=True,
        note="n",
        units=(("images:1024x1024", 2),),
    )


def test_units_are_summed_per_meter_and_sorted() -> None:
    assert units_of({"video_ms": 5, "images": 1}) == (("images", 1), ("video_ms", 5))
    assert units_of([("images", 1), ("images", 2)]) == (("images", 3),)
    assert units_of(None) == ()
