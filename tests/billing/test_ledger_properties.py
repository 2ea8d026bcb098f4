"""Property tests of the ledger (Hypothesis): random sequences of grants, adjustments, holds
(under a spend limit or not), settles, releases and code redemptions against the real stores
on SQLite and PostgreSQL.

After every step: the balance equals the opening balance plus the sum of the ledger, is an
integer from 0 to the bound, the open holds sum to what is held, each hold ends at most
once, a settle never refunds more than its hold, and the spend window holds what the holds
under the limit took, less what they gave back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Connection, select

from faregate.admin import codes, ops
from faregate.app import make_store
from faregate.auth.keys import KeyHasher
from faregate.billing.bounds import MAX_AMOUNT
from faregate.billing.sqlite import SqliteStore
from faregate.billing.store import HoldTicket, SpendLimited, SpendWindow, Store
from faregate.billing.types import Settlement
from faregate.db import migrate
from faregate.db.engine import AdminDB
from faregate.db.schema import holds, ledger, spend_windows

T = TypeVar("T")
WINDOW = "Dproperty"  # the spend window every hold under a limit counts in

amounts = st.integers(1, 10**6) | st.sampled_from([MAX_AMOUNT - 1, MAX_AMOUNT])
grants = amounts | amounts.map(lambda a: -a)
hold_amounts = st.integers(0, 10**6) | st.sampled_from([MAX_AMOUNT, MAX_AMOUNT + 1, 2**63])


@dataclass
class Backend:
    """One migrated database, its store and the operator-side access, on one event loop
    that every example of the test shares."""

    loop: asyncio.AbstractEventLoop
    store: Store
    admin: AdminDB
    hasher: KeyHasher = field(default_factory=lambda: KeyHasher(b"property-secret"))

    def run(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run a store step on the loop (settle and release create their future there)."""

        async def call() -> T:
            return await step()

        return self.loop.run_until_complete(call())

    def act(self, fn: Any) -> Any:
        return self.run(lambda: self.admin.run(fn))


class Ledger(RuleBasedStateMachine):
    """One fresh account per example; a model of what its balance and holds must be."""

    tickets = Bundle("tickets")

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.b = backend
        self.account = str(backend.act(lambda c: ops.create_account(c, "prop")["id"]))
        self.balance = 0
        self.open: dict[str, int] = {}  # hold id -> amount
        self.closed: set[str] = set()
        self.limit: int | None = None  # the account's spend limit in window WINDOW
        self.spent = 0
        self.counted: set[str] = set()  # holds taken under the limit

    # -- steps -------------------------------------------------------------------------

    def _try(self, fn: Any) -> tuple[Any, ops.AdminError | None]:
        """(the action's result, None), or (None, why it was refused)."""
        try:
            return self.b.act(fn), None
        except ops.AdminError as exc:
            return None, exc

    @rule(amount=grants)
    def grant(self, amount: int) -> None:
        self._grant(amount)

    @rule(extra=st.sampled_from([-1, 0, 1]))
    def fill_to_the_bound(self, extra: int) -> None:
        """A grant to just under, at, or just past the bound, open holds counted."""
        amount = MAX_AMOUNT - self.balance - sum(self.open.values()) + extra
        if amount != 0 and -MAX_AMOUNT <= amount <= MAX_AMOUNT:
            self._grant(amount)

    def _grant(self, amount: int) -> None:
        held = sum(self.open.values())
        admitted = self.balance + amount >= 0 and self.balance + held + amount <= MAX_AMOUNT
        balance, refused = self._try(lambda c: ops.grant(c, self.account, amount, "prop"))
        if refused is not None:
            assert not admitted and refused.status == 409, refused.message
            return
        assert admitted
        self.balance += amount
        assert balance == self.balance

    @rule(amount=amounts, twice=st.booleans())
    def redeem(self, amount: int, twice: bool) -> None:
        record, code = self.b.act(lambda c: codes.create_code(c, self.b.hasher, amount, max_uses=2))
        admitted = self.balance + sum(self.open.values()) + amount <= MAX_AMOUNT
        for attempt in range(2 if twice else 1):
            done, refused = self._try(lambda c: codes.redeem(c, self.b.hasher, code, self.account))
            if refused is not None:
                expected = "code_already_redeemed" if admitted else ops.BALANCE_TOO_LARGE
                assert (attempt or not admitted) and refused.code == expected, refused.message
                continue
            assert admitted and not attempt and done["code_id"] == record["id"]
            self.balance += amount
            assert done["balance"] == self.balance

    @rule(limit=st.none() | st.integers(0, 3 * 10**6) | st.just(MAX_AMOUNT))
    def set_spend_limit(self, limit: int | None) -> None:
        self.limit = limit

    @rule(target=tickets, amount=hold_amounts)
    def hold(self, amount: int) -> HoldTicket | None:
        limit = self.limit
        spend = () if limit is None else (SpendWindow("account", self.account, WINDOW, limit),)
        ticket, limited = None, False
        try:
            ticket = self.b.run(
                lambda: self.b.store.hold(
                    account_id=self.account,
                    key_id=None,
                    amount=amount,
                    model="m",
                    request_id="req_prop",
                    ttl_ms=600_000,
                    spend=spend,
                )
            )
        except SpendLimited:
            limited = True
        over_limit = limit is not None and amount <= MAX_AMOUNT and self.spent + amount > limit
        assert limited == over_limit, (amount, self.spent, limit)
        admitted = not over_limit and amount <= self.balance
        assert (ticket is not None) == admitted, (amount, self.balance)
        if ticket is not None:
            self.balance -= amount
            self.open[ticket.id] = amount
            if spend:
                self.spent += amount
                self.counted.add(ticket.id)
        return ticket

    @rule(ticket=consumes(tickets), cost=st.integers(0, 2 * 10**6) | st.just(2**70))
    def settle(self, ticket: HoldTicket | None, cost: int) -> None:
        if ticket is None:
            return
        closed = self.b.run(lambda: self.b.store.settle(ticket, Settlement(cost, 10, 5)))
        self._closed(ticket, closed, cost)

    @rule(ticket=consumes(tickets))
    def release(self, ticket: HoldTicket | None) -> None:
        if ticket is None:
            return
        closed = self.b.run(lambda: self.b.store.release(ticket, "prop"))
        self._closed(ticket, closed, 0)

    @rule(ticket=tickets, release=st.booleans())
    def close_again(self, ticket: HoldTicket | None, release: bool) -> None:
        """Closing a hold a second time (or a first time, if still open) never pays twice."""
        if ticket is None or ticket.id in self.open:
            return
        store = self.b.store
        if release:
            assert self.b.run(lambda: store.release(ticket, "again")) is False
        else:
            assert self.b.run(lambda: store.settle(ticket, Settlement(0, 0, 0))) is False

    def _closed(self, ticket: HoldTicket, closed: bool, cost: int) -> None:
        assert closed and ticket.id in self.open
        amount = self.open.pop(ticket.id)
        self.closed.add(ticket.id)
        # An overrun takes what the balance has, never more.
        refund = amount - cost if cost <= amount else -min(cost - amount, self.balance)
        self.balance += refund
        if ticket.id in self.counted:  # what is given back leaves the window
            self.spent -= refund

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def the_ledger_adds_up(self) -> None:
        view = self.b.run(lambda: self.b.store.balance(self.account))

        def rows(c: Connection) -> tuple[list[Any], list[Any]]:
            entries = c.execute(
                select(ledger.c.kind, ledger.c.amount, ledger.c.hold_id, ledger.c.cost).where(
                    ledger.c.account_id == self.account
                )
            ).all()
            taken = c.execute(
                select(holds.c.id, holds.c.amount, holds.c.status).where(
                    holds.c.account_id == self.account
                )
            ).all()
            return list(entries), list(taken)

        entries, taken = self.b.act(rows)
        spent = self.b.act(
            lambda c: c.execute(
                select(spend_windows.c.spent).where(
                    spend_windows.c.scope == "account",
                    spend_windows.c.scope_id == self.account,
                    spend_windows.c.period == WINDOW,
                )
            ).scalar_one_or_none()
        )
        assert (spent or 0) == self.spent and (spent is None or type(spent) is int)
        assert type(view.balance) is int and 0 <= view.balance <= MAX_AMOUNT
        assert view.balance == self.balance == 0 + sum(r.amount for r in entries)
        assert all(type(r.amount) is int for r in entries)
        assert view.held == sum(self.open.values())
        assert {h.id for h in taken if h.status == "open"} == set(self.open)
        hold_amount = {h.id: h.amount for h in taken}
        ends: dict[str, list[str]] = {}
        for r in entries:
            if r.hold_id is not None:
                ends.setdefault(r.hold_id, []).append(r.kind)
            if r.kind == "settle":
                assert r.amount <= hold_amount[r.hold_id]  # never refunds past the hold
                assert r.cost == hold_amount[r.hold_id] - r.amount
            if r.kind == "release":
                assert r.amount == hold_amount[r.hold_id]
        for hold_id, kinds in ends.items():
            expected = ["hold"] if hold_id in self.open else ["hold", "settle"]
            assert sorted(kinds) in (expected, ["hold", "release"]), kinds


@pytest.fixture
def backend(db_url: str) -> Iterator[Backend]:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(migrate.upgrade(db_url))
    store = make_store(db_url)
    loop.run_until_complete(store.start())
    before = store.finish_open if isinstance(store, SqliteStore) else None
    admin = AdminDB(db_url, before)
    try:
        yield Backend(loop, store, admin)
    finally:
        loop.run_until_complete(store.close())
        loop.run_until_complete(admin.dispose())
        loop.close()


def test_ledger_invariants_hold_over_random_sequences(
    backend: Backend, db_url: str, tmp_path: Path
) -> None:
    sqlite = db_url.startswith("sqlite")
    run_state_machine_as_test(
        lambda: Ledger(backend),
        settings=settings(
            max_examples=20 if sqlite else 6,
            stateful_step_count=20 if sqlite else 15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
