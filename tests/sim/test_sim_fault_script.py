"""Fault script grammar, source selection and fail_times counting."""

from __future__ import annotations

import pytest

from faregate.sim.faults import (
    FaultScript,
    FaultScriptError,
    parse_script,
    resolve_script,
    retry_headers,
    select_script,
)
from faregate.sim.state import SimState


def test_parse_every_directive() -> None:
    script = parse_script(
        " status=429 ; retry_after=2.5;hang;latency_ms=200;stall_after=3;cut_after=4;no_usage;"
        "chunk_delay_ms=50;tokens=7;cached_tokens=128;reasoning_tokens=9;fail_times=2;key=k1;"
        "error_type=insufficient_quota;;"
    )
    assert script.status == 429
    assert script.retry_after == 2.5
    assert script.hang and script.no_usage
    assert script.latency_ms == 200
    assert (script.stall_after, script.cut_after) == (3, 4)
    assert script.chunk_delay_ms == 50
    assert (script.tokens, script.cached_tokens, script.reasoning_tokens) == (7, 128, 9)
    assert (script.fail_times, script.key) == (2, "k1")
    assert script.error_type == "insufficient_quota"
    assert parse_script("") == FaultScript(text="")


@pytest.mark.parametrize(
    ("script", "directive"),
    [
        ("explode", "explode"),
        ("status=200", "status=200"),
        ("status=abc", "status=abc"),
        ("tokens=-1", "tokens=-1"),
        ("latency_ms=nan", "latency_ms=nan"),
        ("tokens", "tokens"),
        ("hang=later", "hang=later"),
        ("status=500;bogus=1", "bogus=1"),
    ],
)
def test_bad_directives_are_named(script: str, directive: str) -> None:
    with pytest.raises(FaultScriptError) as info:
        parse_script(script)
    assert info.value.directive == directive
    assert directive in str(info.value)


def test_error_status_and_retry_after() -> None:
    assert parse_script("status=503").error_status == 503
    assert parse_script("error_type=insufficient_quota").error_status == 429
    assert parse_script("error_type=mystery").error_status == 500
    assert parse_script("status=429").retry_after_seconds == 1.0
    assert parse_script("status=429;retry_after=0").retry_after_seconds == 0.0
    assert parse_script("error_type=insufficient_quota").retry_after_seconds is None
    assert parse_script("tokens=3").error_status is None
    assert retry_headers(1.5) == {"Retry-After": "2", "retry-after-ms": "1500"}


def test_select_script_sources() -> None:
    assert select_script(None, None) == ""
    assert select_script("status=500", None) == "status=500"
    assert select_script(None, {"metadata": {"sim_fault": "hang"}}) == "hang"
    assert select_script(None, {"user": "sim:tokens=3"}) == "tokens=3"
    assert select_script(None, {"user": "alice"}) == ""
    combined = select_script(
        "status=503", {"user": "sim:status=429", "metadata": {"sim_fault": "tokens=2"}}
    )
    assert parse_script(combined).status == 503
    assert parse_script(combined).tokens == 2


def test_fail_times_counts_per_key() -> None:
    state = SimState()
    script = parse_script("fail_times=2;key=a;status=503;tokens=4")
    results = [resolve_script(script, state) for _ in range(3)]
    assert [r.error_status for r in results] == [503, 503, None]
    assert all(r.tokens == 4 for r in results)
    other = resolve_script(parse_script("fail_times=1;key=b"), state)
    assert other.error_status == 500
    assert resolve_script(parse_script("fail_times=1;key=b"), state).error_status is None
    state.reset()
    assert resolve_script(script, state).error_status == 503
