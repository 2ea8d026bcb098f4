"""The collector after startup: startup's objects frozen, the young threshold set."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from faregate.observe import heap


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_settle_freezes_what_is_alive_and_sets_the_young_threshold(restored: None) -> None:
    kept = [object() for _ in range(10)]
    older, oldest = gc.get_threshold()[1:]
    heap.settle(True, 12_345)
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (12_345, older, oldest)


def test_zero_keeps_the_interpreters_threshold(restored: None) -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    heap.settle(False, 0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
