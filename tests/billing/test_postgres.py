"""The PostgreSQL ledger's batches: one-statement steps pipelined in one round trip, the rest in
a transaction, and a failing batch undone as a whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from faregate.admin import ops
from faregate.billing.postgres import PostgresStore
from faregate.billing.store import HoldTicket, LedgerUnavailable, SpendWindow
from faregate.billing.types import Settlement
from faregate.db.engine import AdminDB
from faregate.db.urls import asyncpg_dsn

# conftest's `db` (a migrated database and its admin engine), on PostgreSQL only.
pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_url", ["postgres"], indirect=True)]

TTL = 60_000


@pytest.fixture
async def store(db: AdminDB) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(asyncpg_dsn(db.url))
    await s.start()
    try:
        yield s
    finally:
        await s.close()


SEEN: list[str] = []


class Counted(asyncpg.Connection):  # type: ignore[misc]
    """A connection that records which of its query methods are called."""

    async def fetchmany(self, *args: Any, **kw: Any) -> Any:
        SEEN.append("fetchmany")
        return await super().fetchmany(*args, **kw)

    async def fetchval(self, *args: Any, **kw: Any) -> Any:
        SEEN.append("fetchval")
        return await super().fetchval(*args, **kw)

    async def execute(self, *args: Any, **kw: Any) -> Any:
        SEEN.append("execute")
        return await super().execute(*args, **kw)


def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on the store's new writer connections count their calls."""
    original = asyncpg.connect

    async def connect(*args: Any, **kw: Any) -> asyncpg.Connection:
        return await original(*args, connection_class=Counted, **kw)

    monkeypatch.setattr(asyncpg, "connect", connect)
    SEEN.clear()
    return SEEN


async def account(admin: AdminDB, credits: int) -> str:
    def act(c: Any) -> str:
        acct = ops.create_account(c, "test")
        ops.grant(c, acct["id"], credits, "test credits")
        return str(acct["id"])

    return await admin.run(act)


async def balance(store: PostgresStore, account_id: str) -> int:
    return (await store.balance(account_id)).balance


def hold(store: PostgresStore, account_id: str, amount: int, **kw: Any) -> Any:
    return store.hold(
        account_id=account_id,
        key_id=None,
        amount=amount,
        model="m",
        request_id="req_test",
        ttl_ms=TTL,
        **kw,
    )


async def test_a_batch_of_takes_and_closes_is_one_call_without_a_transaction(
    db: AdminDB, store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rich, poor = await account(db, 1_000), await account(db, 10)
    first = await hold(store, rich, 300)
    assert first is not None
    calls = counted(monkeypatch)
    await store.close()  # a new writer connection, counted
    await store.start()

    async def settle() -> bool:
        return await store.settle(first, Settlement(cost=120, prompt_tokens=3, completion_tokens=4))

    results = await asyncio.gather(
        hold(store, rich, 100),
        hold(store, poor, 50),  # refused: the others go ahead
        settle(),
        hold(store, poor, 10),
    )
    assert calls == ["fetchmany"]
    assert [r is not None and r is not False for r in results] == [True, False, True, True]
    assert await balance(store, rich) == 1_000 - 120 - 100
    assert await balance(store, poor) == 0
    # A hold closes once: the second close in a pipelined batch changes nothing.
    assert await store.release(first, "again") is False
    assert await balance(store, rich) == 780


async def test_a_step_with_spend_windows_sends_its_batch_as_a_transaction(
    db: AdminDB, store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = await account(db, 1_000)
    calls = counted(monkeypatch)
    await store.close()
    await store.start()
    window = SpendWindow("account", acct, "D2026-12-04", 150)
    plain, windowed, refused = await asyncio.gather(
        hold(store, acct, 100),
        hold(store, acct, 100, spend=(window,)),
        hold(store, acct, 100, spend=(window,)),
        return_exceptions=True,
    )
    assert isinstance(plain, HoldTicket) and isinstance(windowed, HoldTicket)
    assert not isinstance(refused, HoldTicket)  # the window has 50 left
    assert "fetchmany" not in calls
    assert calls.count("execute") >= 2  # BEGIN ... COMMIT around the batch
    assert await balance(store, acct) == 800


async def test_a_pipelined_batch_that_fails_is_undone_whole(
    db: AdminDB, store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = await account(db, 1_000)
    ticket = await hold(store, acct, 100)
    assert ticket is not None
    ids = iter(["hold_same", "hold_same"])  # the second insert breaks the unique key
    monkeypatch.setattr("faregate.billing.ledger.new_id", lambda prefix: next(ids))

    async def settle() -> bool:
        return await store.settle(ticket, Settlement(cost=40, prompt_tokens=1, completion_tokens=1))

    results = await asyncio.gather(
        settle(),
        hold(store, acct, 10),
        hold(store, acct, 20),
        return_exceptions=True,
    )
    assert all(isinstance(r, LedgerUnavailable) for r in results), results
    assert await balance(store, acct) == 900  # nothing of the batch stayed, not even the settle
    monkeypatch.undo()
    assert (
        await store.settle(ticket, Settlement(cost=40, prompt_tokens=1, completion_tokens=1))
        is True
    )
    assert await balance(store, acct) == 960
