"""The soak's end-of-run checks, on plain data: memory and descriptors flat, the ledger exact."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TERMINAL = ("settle", "release")


@dataclass(frozen=True)
class Sample:
    """One gateway process at one instant."""

    at: float  # seconds since the traffic started
    rss_kb: int
    fds: int


@dataclass(frozen=True)
class Hold:
    id: str
    status: str  # open | settled | released
    cost: int | None
    request_id: str | None


def flatness(
    name: str, baseline: Sample, end: Sample, *, rss_growth: float, fd_slack: int
) -> list[str]:
    """Failures when a process grew between two quiet moments (no request in flight): its
    resident memory by more than `rss_growth` (a fraction), its open descriptors by more
    than `fd_slack`."""
    failures = []
    if end.rss_kb > baseline.rss_kb * (1 + rss_growth):
        failures.append(
            f"{name}: RSS grew from {baseline.rss_kb} kB to {end.rss_kb} kB"
            f" (more than {rss_growth:.0%})"
        )
    if end.fds > baseline.fds + fd_slack:
        failures.append(
            f"{name}: open descriptors grew from {baseline.fds} to {end.fds} (more than {fd_slack})"
        )
    return failures


def ledger_failures(
    balances: Iterable[tuple[str, int, int]],
    holds: Iterable[Hold],
    ledger_kinds: Mapping[str, list[str]],
    client_costs: Mapping[str, int],
) -> list[str]:
    """Failures of the money invariants once no request is in flight.

    `balances`: (account, stored balance, sum of its ledger rows); `ledger_kinds`: the ledger
    row kinds of each hold; `client_costs`: request id -> the cost a client was told."""
    holds = list(holds)
    failures = []
    for account, balance, total in balances:
        if balance != total:
            failures.append(f"{account}: balance {balance} != ledger sum {total}")
        if balance < 0:
            failures.append(f"{account}: balance {balance} below zero")
    by_request: dict[str, Hold] = {}
    for hold in holds:
        kinds = sorted(ledger_kinds.get(hold.id, []))
        if hold.status == "open":
            failures.append(f"hold {hold.id} ({hold.request_id}) is still open")
        elif kinds not in (["hold", "release"], ["hold", "settle"]):
            failures.append(f"hold {hold.id}: ledger rows {kinds}, not one hold and one end")
        elif (hold.status == "settled") != ("settle" in kinds):
            failures.append(f"hold {hold.id}: status {hold.status} but ledger rows {kinds}")
        if hold.request_id:
            by_request[hold.request_id] = hold
    for request_id, cost in client_costs.items():
        served = by_request.get(request_id)
        if served is None:
            failures.append(f"{request_id}: the client was charged {cost} but there is no hold")
        elif served.status != "settled" or served.cost != cost:
            failures.append(
                f"{request_id}: the client was told {cost}, the ledger says"
                f" {served.cost} ({served.status})"
            )
    for hold_id in set(ledger_kinds) - {h.id for h in holds}:
        failures.append(f"ledger rows of an unknown hold {hold_id}")
    return failures
