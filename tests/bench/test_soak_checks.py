"""The soak benchmark's end-of-run checks (bench/soak_checks.py) on hand-made data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Loaded from its file: putting bench/ on sys.path would shadow test packages (bench/usage.py).
_spec = importlib.util.spec_from_file_location(
    "soak_checks", Path(__file__).resolve().parents[2] / "bench" / "soak_checks.py"
)
assert _spec is not None and _spec.loader is not None
soak_checks = importlib.util.module_from_spec(_spec)
sys.modules["soak_checks"] = soak_checks  # its dataclasses look their module up there
_spec.loader.exec_module(soak_checks)
Hold, Sample = soak_checks.Hold, soak_checks.Sample
flatness, ledger_failures = soak_checks.flatness, soak_checks.ledger_failures

BASE = Sample(0.0, rss_kb=100_000, fds=20)


def test_a_flat_process_passes_and_growth_fails() -> None:
    assert flatness("a", BASE, Sample(60.0, 109_000, 27), rss_growth=0.10, fd_slack=8) == []
    grown = flatness("a", BASE, Sample(60.0, 111_000, 29), rss_growth=0.10, fd_slack=8)
    assert len(grown) == 2
    assert "RSS grew from 100000 kB to 111000 kB" in grown[0]
    assert "descriptors grew from 20 to 29" in grown[1]


def _settled(n: int, cost: int) -> Hold:
    return Hold(f"h{n}", "settled", cost, f"req_{n}")


def test_an_exact_ledger_passes() -> None:
    holds = [_settled(1, 70), Hold("h2", "released", None, "req_2")]
    kinds = {"h1": ["hold", "settle"], "h2": ["hold", "release"]}
    assert ledger_failures([("acct", 930, 930)], holds, kinds, {"req_1": 70}) == []


def test_each_broken_invariant_is_named() -> None:
    holds = [
        _settled(1, 70),
        Hold("h2", "open", None, "req_2"),
        Hold("h3", "settled", 5, "req_3"),
        Hold("h4", "released", None, "req_4"),
    ]
    kinds = {
        "h1": ["hold", "settle"],
        "h2": ["hold"],
        "h3": ["hold", "settle", "settle"],  # ended twice
        "h4": ["hold", "settle"],  # status and rows disagree
        "h9": ["release"],
    }
    failures = ledger_failures(
        [("acct", 900, 930), ("poor", -1, -1)],
        holds,
        kinds,
        {"req_1": 71, "req_8": 3},
    )
    expected = [
        "acct: balance 900 != ledger sum 930",
        "poor: balance -1 below zero",
        "hold h2 (req_2) is still open",
        "hold h3: ledger rows ['hold', 'settle', 'settle'], not one hold and one end",
        "hold h4: status released but ledger rows ['hold', 'settle']",
        "req_1: the client was told 71, the ledger says 70 (settled)",
        "req_8: the client was charged 3 but there is no hold",
        "ledger rows of an unknown hold h9",
    ]
    assert failures == expected
