"""Charge: the open hold of one request; settled inside the block, or released on the way out,
exactly once, even when the request is cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import create_async_engine

from faregate.admin import ops
from faregate.app import make_store
from faregate.billing.charge import Charge
from faregate.billing.store import BalanceView, HoldTicket, Store
from faregate.billing.types import Settlement
from faregate.db import migrate, schema
from faregate.db.urls import sqlalchemy_url

BALANCE = 10_000
AMOUNT = 1_000


class Recording:
    """A store wrapper that records every close and can hold one back until released."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[tuple[str, Any]] = []
        self.done: list[tuple[str, bool]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.finished = asyncio.Event()

    async def _wait_gate(self) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()

    async def settle(self, ticket: HoldTicket, settlement: Settlement) -> bool:
        self.calls.append(("settle", settlement.cost))
        await self._wait_gate()
        ok = await self.store.settle(ticket, settlement)
        self.done.append(("settle", ok))
        self.finished.set()
        return ok

    async def release(self, ticket: HoldTicket, note: str) -> bool:
        self.calls.append(("release", note))
        await self._wait_gate()
        ok = await self.store.release(ticket, note)
        self.done.append(("release", ok))
        self.finished.set()
        return ok


class Ledger:
    def __init__(self, store: Store, url: str, account: str) -> None:
        self.store = store
        self.url = url
        self.account = account

    async def ticket(self) -> HoldTicket:
        ticket = await self.store.hold(
            account_id=self.account,
            key_id=None,
            amount=AMOUNT,
            model="m",
            request_id="req_charge",
            ttl_ms=60_000,
        )
        assert ticket is not None
        return ticket

    async def view(self) -> BalanceView:
        return await self.store.balance(self.account)

    async def rows(self) -> list[dict[str, Any]]:
        engine = create_async_engine(sqlalchemy_url(self.url))
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    select(schema.ledger)
                    .where(schema.ledger.c.account_id == self.account)
                    .order_by(schema.ledger.c.id)
                )
                return [dict(r) for r in result.mappings()]
        finally:
            await engine.dispose()

    async def terminal(self, ticket: HoldTicket) -> list[dict[str, Any]]:
        """The ledger rows that closed the hold; also checks balance == sum(ledger)."""
        rows = await self.rows()
        assert (await self.view()).balance == sum(r["amount"] for r in rows)
        return [r for r in rows if r["hold_id"] == ticket.id and r["kind"] != "hold"]


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    await migrate.upgrade(url)
    engine = create_async_engine(sqlalchemy_url(url))

    def setup(c: Connection) -> str:
        account = ops.create_account(c, "charge")
        ops.grant(c, account["id"], BALANCE)
        return str(account["id"])

    try:
        async with engine.begin() as conn:
            account = await conn.run_sync(setup)
    finally:
        await engine.dispose()
    store = make_store(url)
    await store.start()
    try:
        yield Ledger(store, url, account)
    finally:
        await store.close()


def settlement(cost: int) -> Settlement:
    return Settlement(cost=cost, prompt_tokens=3, completion_tokens=4)


async def test_settle_inside_the_block(ledger: Ledger) -> None:
    ticket = await ledger.ticket()
    rec = Recording(ledger.store)
    async with Charge(rec, ticket) as charge:  # type: ignore[arg-type]
        assert charge.cost is None
        await charge.settle(settlement(300))
        assert charge.cost == 300
    assert rec.calls == [("settle", 300)]  # leaving the block added nothing
    assert await ledger.view() == BalanceView(BALANCE - 300, 0, 0)
    [row] = await ledger.terminal(ticket)
    assert (row["kind"], row["cost"], row["amount"]) == ("settle", 300, AMOUNT - 300)


async def test_settle_only_once(ledger: Ledger) -> None:
    ticket = await ledger.ticket()
    rec = Recording(ledger.store)
    async with Charge(rec, ticket) as charge:  # type: ignore[arg-type]
        await charge.settle(settlement(300))
        await charge.settle(settlement(900))
        await charge.release("too late")
        assert charge.cost == 300
    assert rec.calls == [("settle", 300)]
    assert await ledger.view() == BalanceView(BALANCE - 300, 0, 0)
    assert len(await ledger.terminal(ticket)) == 1


async def test_exit_without_settle_releases(ledger: Ledger) -> None:
    ticket = await ledger.ticket()
    assert (await ledger.view()).open_holds == 1
    rec = Recording(ledger.store)
    async with Charge(rec, ticket) as charge:  # type: ignore[arg-type]
        pass
    assert charge.cost == 0
    assert rec.calls == [("release", "request failed")]
    assert await ledger.view() == BalanceView(BALANCE, 0, 0)
    [row] = await ledger.terminal(ticket)
    assert (row["kind"], row["amount"], row["note"]) == ("release", AMOUNT, "request failed")


async def test_exception_releases_and_propagates(ledger: Ledger) -> None:
    ticket = await ledger.ticket()
    rec = Recording(ledger.store)
    with pytest.raises(ValueError, match="upstream broke"):
        async with Charge(rec, ticket):  # type: ignore[arg-type]
            raise ValueError("upstream broke")
    assert rec.calls == [("release", "request failed: ValueError")]
    assert await ledger.view() == BalanceView(BALANCE, 0, 0)
    [row] = await ledger.terminal(ticket)
    assert row["kind"] == "release"
    assert row["note"] == "request failed: ValueError"


async def test_exception_after_settle_keeps_the_settlement(ledger: Ledger) -> None:
    ticket = await ledger.ticket()
    rec = Recording(ledger.store)

    async def request() -> None:
        async with Charge(rec, ticket) as charge:  # type: ignore[arg-type]
            await charge.settle(settlement(250))
            raise RuntimeError("rendering failed after settle")

    with pytest.raises(RuntimeError):
        await request()
    assert rec.calls == [("settle", 250)]
    assert await ledger.view() == BalanceView(BALANCE - 250, 0, 0)
    [row] = await ledger.terminal(ticket)
    assert row["kind"] == "settle"


async def test_explicit_release_then_exit(ledger: Ledger) -> None:
    ticket = await ledger.ticket()
    rec = Recording(ledger.store)
    async with Charge(rec, ticket) as charge:  # type: ignore[arg-type]
        await charge.release("upstream 500")
        await charge.settle(settlement(10))  # no-op: already closed
    assert rec.calls == [("release", "upstream 500")]
    assert charge.cost == 0
    assert await ledger.view() == BalanceView(BALANCE, 0, 0)


async def test_settle_of_a_hold_closed_elsewhere_charges_nothing_and_warns(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """The hold was reaped while the request ran (a stall): the late settle writes nothing."""
    ticket = await ledger.ticket()
    assert await ledger.store.release(ticket, "reaped: hold expired or its process died")
    rows = await ledger.rows()
    with caplog.at_level(logging.WARNING, logger="faregate.billing"):
        async with Charge(ledger.store, ticket) as charge:
            await charge.settle(settlement(300))
    assert await ledger.rows() == rows
    assert await ledger.view() == BalanceView(BALANCE, 0, 0)
    assert ticket.id in caplog.text
    assert "300" in caplog.text


async def test_cancellation_inside_the_block_releases(ledger: Ledger) -> None:
    ticket = await ledger.ticket()
    rec = Recording(ledger.store)
    inside = asyncio.Event()

    async def request() -> None:
        async with Charge(rec, ticket):  # type: ignore[arg-type]
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(request())
    await asyncio.wait_for(inside.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.calls == [("release", "request failed: CancelledError")]
    assert rec.done == [("release", True)]
    assert await ledger.view() == BalanceView(BALANCE, 0, 0)
    assert len(await ledger.terminal(ticket)) == 1


@pytest.mark.parametrize("close", ["exit", "settle"])
async def test_closing_is_shielded_from_a_second_cancellation(ledger: Ledger, close: str) -> None:
    """The task is cancelled again while its hold is being closed: the close still completes."""
    ticket = await ledger.ticket()
    rec = Recording(ledger.store)
    rec.gate = asyncio.Event()  # the store step is slow: it waits for the gate
    inside = asyncio.Event()

    async def request() -> None:
        async with Charge(rec, ticket) as charge:  # type: ignore[arg-type]
            if close == "settle":
                await charge.settle(settlement(400))
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(request())
    if close == "exit":
        await asyncio.wait_for(inside.wait(), 5)
        task.cancel()  # first cancellation: the block exits and starts the release
    await asyncio.wait_for(rec.entered.wait(), 5)
    task.cancel()  # cancelled again, while the store step is in flight
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.done == []
    assert (await ledger.view()).open_holds == 1

    rec.gate.set()
    await asyncio.wait_for(rec.finished.wait(), 5)
    expected = "release" if close == "exit" else "settle"
    assert rec.done == [(expected, True)]
    assert [c[0] for c in rec.calls] == [expected]
    view = await ledger.view()
    assert view.open_holds == 0
    assert view.balance == (BALANCE if close == "exit" else BALANCE - 400)
    [row] = await ledger.terminal(ticket)
    assert row["kind"] == expected
