"""The hop probe (bench/hops.py): loopback ping-pongs between two pinned processes."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# Loaded from its file: putting bench/ on sys.path would shadow test packages (bench/usage.py).
_spec = importlib.util.spec_from_file_location(
    "hops", Path(__file__).resolve().parents[2] / "bench" / "hops.py"
)
assert _spec is not None and _spec.loader is not None
hops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hops)

CPUS = sorted(os.sched_getaffinity(0))


def test_a_ping_pong_times_every_round_and_restores_the_affinity() -> None:
    before = os.sched_getaffinity(0)
    result = hops.ping_pong(CPUS[-1], CPUS[-1], 200)
    assert os.sched_getaffinity(0) == before
    assert set(result) == {"round_trip_p50_us", "round_trip_p90_us", "send_p50_us", "send_p90_us"}
    assert 0 < result["send_p50_us"] <= result["round_trip_p50_us"]
    assert result["round_trip_p50_us"] <= result["round_trip_p90_us"]
    assert result["send_p50_us"] <= result["send_p90_us"]


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to place the processes apart")
def test_both_placements_are_measured_with_two_cpus() -> None:
    result = hops.hop_costs(CPUS[0], CPUS[1], rounds=100)
    assert set(result) == {"rounds", "cross", "same"}
    line = hops.describe(result)
    assert line.startswith("across two CPUs ") and "; on one CPU " in line
    assert line.endswith("(p50 of 100 100-byte loopback ping-pongs)")


def test_without_two_cpus_only_one_placement_is_measured() -> None:
    result = hops.hop_costs(None, None, rounds=50)
    assert set(result) == {"rounds", "same"}
    assert hops.describe(result).startswith("on one CPU ")
    same_cpu = hops.hop_costs(CPUS[0], CPUS[0], rounds=50)
    assert "cross" not in same_cpu


def test_no_rounds_is_refused_before_any_process_starts() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        hops.ping_pong(None, None, 0)
