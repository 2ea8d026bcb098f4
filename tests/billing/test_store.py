"""The ledger stores (SQLite and PostgreSQL): holds, settlement, release, reaping, failure.

Every test runs against a real database built by the migrations: a SQLite file in the test's
tmp dir, or a fresh PostgreSQL database. Accounts and grants go through the admin operations,
and the tables are checked directly with SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from harness import free_port
from sqlalchemy import Connection, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from faregate.admin import ops
from faregate.app import make_store
from faregate.auth.keys import KeyHasher
from faregate.billing.bounds import MAX_AMOUNT
from faregate.billing.postgres import PostgresStore
from faregate.billing.sqlite import SqliteStore, use_wal
from faregate.billing.store import BalanceView, HoldTicket, LedgerUnavailable, Store
from faregate.billing.types import Settlement
from faregate.db import migrate, schema
from faregate.db.urls import asyncpg_dsn, sqlalchemy_url, sqlite_path
from faregate.errors import FaregateError
from faregate.trace import Trace
from faregate.usage.writer import row_of

TTL = 60_000


# -- fixtures ----------------------------------------------------------------------------


@dataclass
class Db:
    """A migrated database and a SQLAlchemy engine to set it up and inspect it."""

    url: str
    engine: AsyncEngine

    async def run(self, fn: Any) -> Any:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def account(self, credits: int = 0) -> str:
        def act(c: Connection) -> str:
            account = ops.create_account(c, "test")
            if credits:
                ops.grant(c, account["id"], credits, "test credits")
            return str(account["id"])

        return str(await self.run(act))

    async def balance(self, account_id: str) -> int:
        return int(
            await self.run(
                lambda c: c.execute(
                    select(schema.accounts.c.balance).where(schema.accounts.c.id == account_id)
                ).scalar_one()
            )
        )

    async def ledger(self, account_id: str) -> list[dict[str, Any]]:
        def act(c: Connection) -> list[dict[str, Any]]:
            rows = c.execute(
                select(schema.ledger)
                .where(schema.ledger.c.account_id == account_id)
                .order_by(schema.ledger.c.id)
            ).mappings()
            return [dict(r) for r in rows]

        return list(await self.run(act))

    async def holds(self, account_id: str) -> dict[str, dict[str, Any]]:
        def act(c: Connection) -> dict[str, dict[str, Any]]:
            rows = c.execute(
                select(schema.holds).where(schema.holds.c.account_id == account_id)
            ).mappings()
            return {r["id"]: dict(r) for r in rows}

        return dict(await self.run(act))

    async def instances(self) -> set[str]:
        return set(
            await self.run(lambda c: c.execute(select(schema.instances.c.id)).scalars().all())
        )

    async def execute(self, sql: str, **params: Any) -> None:
        await self.run(lambda c: c.execute(text(sql), params))

    async def consistent(self, account_id: str) -> list[dict[str, Any]]:
        """The balance is the sum of the ledger and never negative; each hold that has a
        terminal row has exactly one. Returns the ledger."""
        rows = await self.ledger(account_id)
        balance = await self.balance(account_id)
        assert balance >= 0
        assert balance == sum(r["amount"] for r in rows)
        kinds: dict[str, list[str]] = {}
        for r in rows:
            if r["hold_id"] is not None:
                kinds.setdefault(r["hold_id"], []).append(r["kind"])
        for found in kinds.values():
            assert sorted(found) in (["hold"], ["hold", "release"], ["hold", "settle"]), found
        return rows


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    await migrate.upgrade(db_url)
    engine = create_async_engine(sqlalchemy_url(db_url))
    try:
        yield Db(db_url, engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def store(db: Db) -> AsyncIterator[Store]:
    s = make_store(db.url)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


@contextlib.asynccontextmanager
async def second_store(url: str) -> AsyncIterator[Store]:
    """Another store on the same database: what another gateway process would run."""
    s = make_store(url)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def take(store: Store, account_id: str, amount: int, **kw: Any) -> HoldTicket | None:
    args: dict[str, Any] = {
        "account_id": account_id,
        "key_id": None,
        "amount": amount,
        "model": "m",
        "request_id": "req_test",
        "ttl_ms": TTL,
        **kw,
    }
    return await store.hold(**args)


async def must_take(store: Store, account_id: str, amount: int, **kw: Any) -> HoldTicket:
    ticket = await take(store, account_id, amount, **kw)
    assert ticket is not None
    return ticket


def settlement(cost: int, **kw: Any) -> Settlement:
    return Settlement(cost=cost, prompt_tokens=10, completion_tokens=5, **kw)


# -- holds -------------------------------------------------------------------------------


async def test_hold_debits_and_records(db: Db, store: Store) -> None:
    account = await db.account(1_000)
    before = time.time_ns() // 1_000_000
    ticket = await take(
        store, account, 300, key_id="key_x", model="sim-small", request_id="req_1", ttl_ms=TTL
    )
    assert ticket is not None
    assert (ticket.account_id, ticket.key_id, ticket.amount, ticket.model) == (
        account,
        "key_x",
        300,
        "sim-small",
    )
    assert await db.balance(account) == 700

    holds = await db.holds(account)
    assert list(holds) == [ticket.id]
    row = holds[ticket.id]
    assert row["status"] == "open"
    assert row["amount"] == 300
    assert row["instance_id"] == store.instance_id
    assert row["request_id"] == "req_1"
    assert row["key_id"] == "key_x"
    assert row["closed_at"] is None
    assert row["cost"] is None
    assert row["created_at"] >= before
    assert row["expires_at"] == row["created_at"] + TTL

    rows = await db.consistent(account)
    assert [(r["kind"], r["amount"]) for r in rows] == [("grant", 1_000), ("hold", -300)]
    assert rows[1]["hold_id"] == ticket.id
    assert rows[1]["model"] == "sim-small"
    assert rows[1]["key_id"] == "key_x"


async def test_hold_of_the_whole_balance(db: Db, store: Store) -> None:
    account = await db.account(500)
    assert await take(store, account, 500) is not None
    assert await db.balance(account) == 0
    await db.consistent(account)


async def test_insufficient_balance_returns_none_and_writes_nothing(db: Db, store: Store) -> None:
    account = await db.account(100)
    assert await take(store, account, 101) is None
    assert await db.balance(account) == 100
    assert await db.holds(account) == {}
    rows = await db.consistent(account)
    assert [r["kind"] for r in rows] == ["grant"]

    empty = await db.account(0)
    assert await take(store, empty, 1) is None
    assert await db.holds(empty) == {}
    assert await db.ledger(empty) == []


async def test_a_hold_past_the_bound_is_refused_before_sql(db: Db, store: Store) -> None:
    """A worst case past any balance (and past 64 bits) is an insufficient balance, not a
    failed batch: SQLite cannot even bind 2**63."""
    account = await db.account(MAX_AMOUNT)
    for amount in (MAX_AMOUNT + 1, 2**63, 2**70):
        assert await take(store, account, amount) is None
    assert await db.balance(account) == MAX_AMOUNT
    assert await db.holds(account) == {}
    assert await take(store, account, MAX_AMOUNT) is not None
    await db.consistent(account)


async def test_a_huge_reported_cost_stays_an_integer_charge(db: Db, store: Store) -> None:
    """Usage past any price times any token count: the overrun collects the balance, in
    integers, and the stored cost stays within the bound."""
    account = await db.account(MAX_AMOUNT)
    ticket = await must_take(store, account, 1_000)
    assert await store.settle(ticket, settlement(2**70))
    assert await db.balance(account) == 0
    hold = (await db.holds(account))[ticket.id]
    assert hold["cost"] == MAX_AMOUNT and isinstance(hold["cost"], int)
    rows = await db.consistent(account)
    assert all(isinstance(r["amount"], int) for r in rows)


async def test_a_grant_counts_what_open_holds_may_give_back(db: Db, store: Store) -> None:
    """A grant up to the bound while a hold is open would let its release take the balance
    past the bound (and, with the database's check, fail the release's whole batch)."""
    account = await db.account(MAX_AMOUNT)
    ticket = await must_take(store, account, 1_000)
    with pytest.raises(ops.AdminError) as info:
        await db.run(lambda c: ops.grant(c, account, 1_000))
    assert info.value.code == ops.BALANCE_TOO_LARGE and "1000 held" in info.value.message
    assert await store.release(ticket, "test")
    assert await db.balance(account) == MAX_AMOUNT
    await db.consistent(account)


async def test_hold_on_unknown_account_is_refused(db: Db, store: Store) -> None:
    assert await take(store, "acct_missing", 1) is None
    count = await db.run(
        lambda c: c.execute(select(func.count()).select_from(schema.holds)).scalar_one()
    )
    assert count == 0


async def test_a_failed_hold_in_a_batch_does_not_disturb_the_others(db: Db, store: Store) -> None:
    rich, poor = await db.account(1_000), await db.account(10)
    results = await asyncio.gather(
        take(store, rich, 100), take(store, poor, 50), take(store, rich, 200)
    )
    assert [r is not None for r in results] == [True, False, True]
    assert await db.balance(rich) == 700
    assert await db.balance(poor) == 10
    await db.consistent(rich)
    await db.consistent(poor)


# -- the concurrency invariant -----------------------------------------------------------


async def test_200_concurrent_holds_admit_exactly_what_the_balance_covers(
    db: Db, store: Store
) -> None:
    amount, covered = 137, 73
    initial = amount * covered + 50  # not a multiple: 50 left over
    account = await db.account(initial)

    lows: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            lows.append((await store.balance(account)).balance)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(
        *(take(store, account, amount, request_id=f"req_{i}") for i in range(200))
    )
    done.set()
    await watcher

    admitted = [t for t in results if t is not None]
    assert len(admitted) == initial // amount == covered
    assert len({t.id for t in admitted}) == covered
    assert min(lows) >= 0
    assert await db.balance(account) == 50
    view = await store.balance(account)
    assert view == BalanceView(balance=50, held=covered * amount, open_holds=covered)
    rows = await db.consistent(account)
    assert sum(r["amount"] for r in rows) == 50
    assert len(await db.holds(account)) == covered  # refused holds wrote no row

    # Each admitted hold ends concurrently: a third released, the rest settled at costs from
    # zero to the whole hold.
    rng = random.Random(7)
    plan: dict[str, int | None] = {}
    for i, ticket in enumerate(admitted):
        plan[ticket.id] = None if i % 3 == 0 else rng.choice([0, 1, amount // 2, amount, 99])

    async def finish(ticket: HoldTicket) -> bool:
        cost = plan[ticket.id]
        if cost is None:
            return await store.release(ticket, "test release")
        return await store.settle(ticket, settlement(cost))

    assert all(await asyncio.gather(*(finish(t) for t in admitted)))

    charged = sum(c for c in plan.values() if c is not None)
    assert await db.balance(account) == initial - charged
    assert await store.balance(account) == BalanceView(initial - charged, 0, 0)

    holds = await db.holds(account)
    rows = await db.consistent(account)
    per_hold: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["hold_id"] is not None:
            per_hold.setdefault(r["hold_id"], []).append(r)
    assert set(per_hold) == set(holds) == set(plan)
    for hold_id, cost in plan.items():
        row = holds[hold_id]
        entries = sorted(per_hold[hold_id], key=lambda r: r["kind"])
        assert row["closed_at"] is not None
        if cost is None:
            assert row["status"] == "released"
            assert row["cost"] == 0
            assert [(e["kind"], e["amount"]) for e in entries] == [
                ("hold", -amount),
                ("release", amount),
            ]
            assert entries[1]["cost"] is None
            assert entries[1]["note"] == "test release"
        else:
            assert row["status"] == "settled"
            assert row["cost"] == cost
            assert [(e["kind"], e["amount"]) for e in entries] == [
                ("hold", -amount),
                ("settle", amount - cost),
            ]
            assert entries[1]["cost"] == cost


# -- closing a hold ----------------------------------------------------------------------


async def test_settle_refunds_the_unused_part(db: Db, store: Store) -> None:
    account = await db.account(10_000)
    ticket = await must_take(store, account, 1_000)
    s = Settlement(
        cost=250,
        prompt_tokens=40,
        completion_tokens=60,
        cached_tokens=8,
        reasoning_tokens=16,
        estimated=True,
        note="a note",
    )
    assert await store.settle(ticket, s)
    assert await db.balance(account) == 10_000 - 250
    row = (await db.holds(account))[ticket.id]
    assert (row["status"], row["cost"]) == ("settled", 250)
    settle = (await db.consistent(account))[-1]
    assert settle["kind"] == "settle"
    assert settle["hold_id"] == ticket.id
    assert settle["amount"] == 750
    assert settle["cost"] == 250
    assert (
        settle["prompt_tokens"],
        settle["completion_tokens"],
        settle["cached_tokens"],
        settle["reasoning_tokens"],
    ) == (40, 60, 8, 16)
    assert settle["estimated"] is True
    assert settle["note"] == "a note"


async def test_settle_records_the_units_billed(db: Db, store: Store) -> None:
    account = await db.account(10_000)
    ticket = await must_take(store, account, 1_000)
    units = (("images:1024x1024/hd", 2), ("video_ms", 8_000))
    assert await store.settle(
        ticket, Settlement(cost=900, prompt_tokens=5, completion_tokens=0, units=units)
    )
    other = await must_take(store, account, 1_000)
    assert await store.settle(other, settlement(100))
    third = await must_take(store, account, 1_000)
    assert await store.release(third, "upstream failed")
    rows = await db.consistent(account)
    closing = [r for r in rows if r["kind"] in ("settle", "release")]
    assert [r["units"] for r in closing] == [
        '{"images:1024x1024/hd":2,"video_ms":8000}',
        None,  # tokens only: the token columns say it all
        None,
    ]
    assert all(r["units"] is None for r in rows if r["kind"] == "hold")


async def test_usage_rows_record_their_units(db: Db, store: Store) -> None:
    trace = Trace("images", units=(("images:1024x1024", 3),), cost=120_000)
    plain = Trace("chat", prompt_tokens=3)
    await store.write_usage([row_of(trace), row_of(plain)])
    rows = await db.run(
        lambda c: c.execute(
            select(schema.usage_log.c.route, schema.usage_log.c.units).order_by(
                schema.usage_log.c.id
            )
        ).all()
    )
    assert [tuple(r) for r in rows] == [("images", '{"images:1024x1024":3}'), ("chat", None)]


async def test_settle_at_the_full_hold_and_at_zero(db: Db, store: Store) -> None:
    account = await db.account(1_000)
    full = await must_take(store, account, 400)
    free = await must_take(store, account, 300)
    assert await store.settle(full, settlement(400))
    assert await store.settle(free, settlement(0))
    assert await db.balance(account) == 600
    rows = await db.consistent(account)
    by_hold = {(r["hold_id"], r["kind"]): r for r in rows}
    assert by_hold[(full.id, "settle")]["amount"] == 0
    assert by_hold[(full.id, "settle")]["estimated"] is False
    assert by_hold[(free.id, "settle")]["amount"] == 300


async def test_release_refunds_everything(db: Db, store: Store) -> None:
    account = await db.account(1_000)
    ticket = await must_take(store, account, 600)
    assert await store.release(ticket, "upstream failed")
    assert await db.balance(account) == 1_000
    assert (await db.holds(account))[ticket.id]["status"] == "released"
    release = (await db.consistent(account))[-1]
    assert (release["kind"], release["amount"], release["note"]) == (
        "release",
        600,
        "upstream failed",
    )


async def test_a_settle_above_the_hold_never_overdraws(db: Db, store: Store) -> None:
    account = await db.account(100)
    ticket = await must_take(store, account, 100)
    assert await store.settle(ticket, settlement(150))
    assert (await db.holds(account))[ticket.id]["status"] == "settled"
    await db.consistent(account)  # the balance is the sum of the ledger and never below zero


@pytest.mark.parametrize(
    ("first", "second"),
    [("release", "settle"), ("settle", "release"), ("settle", "settle"), ("release", "release")],
)
async def test_a_hold_closes_exactly_once(db: Db, store: Store, first: str, second: str) -> None:
    account = await db.account(1_000)
    ticket = await must_take(store, account, 500)

    async def close(how: str, cost: int) -> bool:
        if how == "settle":
            return await store.settle(ticket, settlement(cost))
        return await store.release(ticket, "done")

    assert await close(first, 100)
    balance, rows, holds = (
        await db.balance(account),
        await db.ledger(account),
        await db.holds(account),
    )
    assert await close(second, 200) is False
    assert await db.balance(account) == balance
    assert await db.ledger(account) == rows
    assert await db.holds(account) == holds
    await db.consistent(account)


async def test_concurrent_settle_and_release_of_one_hold(db: Db, store: Store) -> None:
    account = await db.account(1_000)
    ticket = await must_take(store, account, 500)
    results = await asyncio.gather(
        store.settle(ticket, settlement(100)),
        store.release(ticket, "race"),
        store.settle(ticket, settlement(200)),
    )
    assert results == [True, False, False]  # the first to commit wins, the rest write nothing
    assert await db.balance(account) == 900
    rows = await db.consistent(account)
    assert [r["kind"] for r in rows] == ["grant", "hold", "settle"]


# -- reads -------------------------------------------------------------------------------


async def test_find_key(db: Db, store: Store) -> None:
    hasher = KeyHasher(b"test-secret")
    account = await db.account()
    expires = int(time.time() * 1000) + 3_600_000

    def make_keys(c: Connection) -> tuple[dict[str, Any], str, dict[str, Any], str]:
        limited, limited_key = ops.create_key(
            c, hasher, account, "limited", models=["sim-small", "gpt-4o"], expires_at=expires
        )
        plain, plain_key = ops.create_key(c, hasher, account, "plain")
        return limited, limited_key, plain, plain_key

    limited, limited_key, plain, plain_key = await db.run(make_keys)

    found = await store.find_key(hasher(limited_key))
    assert found is not None
    assert found.id == limited["id"]
    assert found.account_id == account
    assert found.allowed_models == frozenset({"sim-small", "gpt-4o"})
    assert found.expires_at == expires
    assert found.revoked is False

    found = await store.find_key(hasher(plain_key))
    assert found is not None
    assert (found.id, found.allowed_models, found.expires_at, found.revoked) == (
        plain["id"],
        None,
        None,
        False,
    )

    assert await store.find_key(hasher("fg-not-a-key")) is None
    assert await store.find_key(plain_key) is None  # the table holds hashes, never keys

    await db.run(lambda c: ops.revoke_key(c, plain["id"]))
    found = await store.find_key(hasher(plain_key))
    assert found is not None
    assert found.revoked is True


async def test_balance_view(db: Db, store: Store) -> None:
    account = await db.account(1_000)
    other = await db.account(5_000)
    assert await store.balance(account) == BalanceView(1_000, 0, 0)
    a = await must_take(store, account, 100)
    b = await must_take(store, account, 250)
    await must_take(store, other, 4_000)
    assert await store.balance(account) == BalanceView(650, 350, 2)
    assert await store.settle(a, settlement(40))
    assert await store.balance(account) == BalanceView(710, 250, 1)
    assert await store.release(b, "done")
    assert await store.balance(account) == BalanceView(960, 0, 0)
    assert await store.balance(other) == BalanceView(1_000, 4_000, 1)
    assert await store.balance("acct_missing") == BalanceView(0, 0, 0)


# -- crash recovery ----------------------------------------------------------------------


async def _age_instance(db: Db, instance_id: str, by_ms: int = 600_000) -> None:
    await db.execute(
        "UPDATE instances SET heartbeat_at = heartbeat_at - :by WHERE id = :id",
        by=by_ms,
        id=instance_id,
    )


async def test_start_registers_the_instance_and_close_removes_it(db: Db) -> None:
    async with second_store(db.url) as s:
        assert s.instance_id in await db.instances()
    assert s.instance_id not in await db.instances()


async def test_reap_releases_the_holds_of_an_instance_that_stopped_beating(
    db: Db, store: Store
) -> None:
    account = await db.account(1_000)
    async with second_store(db.url) as dead:
        ticket = await must_take(dead, account, 400)
        await _age_instance(db, dead.instance_id)
        assert await store.reap(stale_ms=60_000) == 1
        assert dead.instance_id not in await db.instances()  # the dead instance is forgotten
        assert store.instance_id in await db.instances()

        row = (await db.holds(account))[ticket.id]
        assert row["status"] == "released"
        release = (await db.consistent(account))[-1]
        assert (release["kind"], release["hold_id"], release["amount"]) == (
            "release",
            ticket.id,
            400,
        )
        assert "reaped" in release["note"]
        assert await db.balance(account) == 1_000

        # The process was not dead after all: its late settle finds the hold closed.
        ledger = await db.ledger(account)
        assert await dead.settle(ticket, settlement(100)) is False
        assert await db.ledger(account) == ledger
        assert await db.balance(account) == 1_000

        assert await store.reap(stale_ms=60_000) == 0  # nothing left to reap


async def test_reap_releases_the_holds_of_a_process_that_closed_without_closing_them(
    db: Db, store: Store
) -> None:
    account = await db.account(1_000)
    async with second_store(db.url) as gone:
        ticket = await must_take(gone, account, 300)
    assert gone.instance_id not in await db.instances()
    assert (await db.holds(account))[ticket.id]["status"] == "open"
    assert await store.reap(stale_ms=60_000) == 1
    assert (await db.holds(account))[ticket.id]["status"] == "released"
    assert await db.balance(account) == 1_000
    await db.consistent(account)


async def test_reap_releases_an_expired_hold_even_of_a_live_instance(db: Db, store: Store) -> None:
    account = await db.account(1_000)
    async with second_store(db.url) as live:
        expired = await must_take(live, account, 100, ttl_ms=1)
        mine_expired = await must_take(store, account, 200, ttl_ms=1)
        kept = await must_take(live, account, 300)
        await asyncio.sleep(0.01)
        await live.heartbeat()
        assert await store.reap(stale_ms=60_000) == 2
        holds = await db.holds(account)
        assert holds[expired.id]["status"] == "released"
        assert holds[mine_expired.id]["status"] == "released"
        assert holds[kept.id]["status"] == "open"
        assert await db.balance(account) == 700
        await db.consistent(account)
        assert await live.settle(kept, settlement(30))
    assert await db.balance(account) == 970


async def test_reap_leaves_live_unexpired_holds_alone(db: Db, store: Store) -> None:
    account = await db.account(1_000)
    async with second_store(db.url) as live:
        theirs = await must_take(live, account, 100)
        mine = await must_take(store, account, 200)
        await live.heartbeat()
        assert await store.reap(stale_ms=60_000) == 0
        assert await live.reap(stale_ms=60_000) == 0
        # A store never takes itself for dead, however old its own heartbeat row is.
        await _age_instance(db, store.instance_id)
        assert await store.reap(stale_ms=60_000) == 0
        holds = await db.holds(account)
        assert holds[theirs.id]["status"] == holds[mine.id]["status"] == "open"
        assert await db.balance(account) == 700
        assert await live.settle(theirs, settlement(10))
        assert await store.settle(mine, settlement(20))
    assert await db.balance(account) == 970
    await db.consistent(account)


async def test_concurrent_reapers_release_a_hold_once(db: Db, store: Store) -> None:
    account = await db.account(1_000)
    async with second_store(db.url) as dead:
        tickets = [await must_take(dead, account, 100) for _ in range(5)]
        await _age_instance(db, dead.instance_id)
        async with second_store(db.url) as reaper_b:
            counts = await asyncio.gather(
                store.reap(stale_ms=60_000), reaper_b.reap(stale_ms=60_000)
            )
        assert sum(counts) == len(tickets)
    assert await db.balance(account) == 1_000
    rows = await db.consistent(account)
    assert [r["kind"] for r in rows].count("release") == len(tickets)


async def test_an_instance_declared_dead_that_beats_again_keeps_its_holds(
    db: Db, store: Store
) -> None:
    """A process taken for dead after a stall (its row deleted by another reaper) comes back
    to life with its next heartbeat: its later holds are not reaped, its settles count."""
    account = await db.account(1_000)
    async with second_store(db.url) as stalled:
        await _age_instance(db, stalled.instance_id)  # e.g. its event loop or DB link stalled
        assert await store.reap(stale_ms=60_000) == 0  # no holds yet; its row is deleted
        assert stalled.instance_id not in await db.instances()
        await stalled.heartbeat()  # it is alive and beating again
        assert stalled.instance_id in await db.instances()
        ticket = await must_take(stalled, account, 400)
        reaped = await store.reap(stale_ms=60_000)
        settled = await stalled.settle(ticket, settlement(100))
        assert (reaped, settled) == (0, True)
        assert await db.balance(account) == 900


# -- several processes on one database ------------------------------------------------


@pytest.mark.postgres
async def test_two_postgres_stores_never_overdraw(pg_url: str) -> None:
    await migrate.upgrade(pg_url)
    engine = create_async_engine(sqlalchemy_url(pg_url))
    db = Db(pg_url, engine)
    try:
        amount = 100
        initial = amount * 61 + 99
        account = await db.account(initial)
        async with second_store(pg_url) as a, second_store(pg_url) as b:
            assert a.instance_id != b.instance_id

            async def burst(s: Store, n: int) -> list[HoldTicket | None]:
                out: list[HoldTicket | None] = []
                for _ in range(4):  # several batches from each store, interleaved
                    out += await asyncio.gather(*(take(s, account, amount) for _ in range(n)))
                return out

            got_a, got_b = await asyncio.gather(burst(a, 25), burst(b, 25))
            admitted = [t for t in got_a + got_b if t is not None]
            assert len(admitted) == initial // amount
            assert any(t is not None for t in got_a)
            assert any(t is not None for t in got_b)
            assert await db.balance(account) == 99
            await db.consistent(account)

            # Each store settles the holds it took, concurrently with the other.
            def ends(s: Store, got: list[HoldTicket | None]) -> list[Any]:
                return [s.settle(t, settlement(amount // 2)) for t in got if t is not None]

            assert all(await asyncio.gather(*ends(a, got_a), *ends(b, got_b)))
        assert await db.balance(account) == initial - len(admitted) * (amount // 2)
        rows = await db.consistent(account)
        assert [r["kind"] for r in rows].count("settle") == len(admitted)
    finally:
        await engine.dispose()


_WORKER = """
import asyncio, sys, time
from faregate.app import make_store

async def main(url, account, amount, rounds, n, start_at):
    store = make_store(url)
    await store.start()
    try:
        time.sleep(max(0.0, start_at - time.time()))
        admitted = 0
        for _ in range(rounds):
            got = await asyncio.gather(*(
                store.hold(account_id=account, key_id=None, amount=amount, model="m",
                           request_id="r", ttl_ms=60000)
                for _ in range(n)
            ))
            admitted += sum(t is not None for t in got)
            await asyncio.sleep(0)
    finally:
        await store.close()
    print(admitted)

url, account, amount, rounds, n, start_at = sys.argv[1:]
asyncio.run(main(url, account, int(amount), int(rounds), int(n), float(start_at)))
"""


async def test_two_processes_on_one_database_never_overdraw(db: Db) -> None:
    amount = 100
    initial = amount * 150 + 42
    account = await db.account(initial)
    start_at = time.time() + 2.0
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            db.url,
            account,
            str(amount),
            "10",
            "20",
            str(start_at),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 60)
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    admitted = [int(out) for out, _ in outputs]
    assert sum(admitted) == initial // amount  # 400 attempts, 150 covered
    assert await db.balance(account) == 42
    rows = await db.consistent(account)
    assert [r["kind"] for r in rows].count("hold") == 150
    assert len(await db.holds(account)) == 150


# -- failing closed ----------------------------------------------------------------------


class TcpProxy:
    """A loopback TCP relay whose `cut()` makes the database unreachable, deterministically:
    open connections are reset and new ones refused."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in self._writers:
            w.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for w in self._writers:
            with contextlib.suppress(Exception):
                await w.wait_closed()
        self._writers.clear()


def _via_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    return urlunsplit(parts._replace(netloc=f"{netloc}:{port}"))


def _assert_unavailable(exc: BaseException) -> None:
    assert isinstance(exc, LedgerUnavailable)
    assert isinstance(exc, FaregateError)
    assert exc.status == 503
    assert exc.code == "ledger_unavailable"
    assert exc.retry_after is not None


@pytest.mark.postgres
async def test_postgres_unreachable_fails_closed(pg_url: str) -> None:
    await migrate.upgrade(pg_url)
    engine = create_async_engine(sqlalchemy_url(pg_url))
    db = Db(pg_url, engine)
    proxy = TcpProxy(urlsplit(pg_url).port or 5432)
    await proxy.start()
    store = make_store(_via_port(pg_url, proxy.port))
    try:
        account = await db.account(1_000)
        await store.start()
        ticket = await must_take(store, account, 100)

        await proxy.cut()  # the database is gone: connections reset, new ones refused
        for attempt in range(3):  # the broken writer, then failed reconnects
            with pytest.raises(LedgerUnavailable) as caught:
                await asyncio.wait_for(take(store, account, 100), 10)
            _assert_unavailable(caught.value)
            assert caught.value.__cause__ is not None, attempt
        with pytest.raises(LedgerUnavailable):
            await asyncio.wait_for(store.settle(ticket, settlement(10)), 10)
        with pytest.raises(LedgerUnavailable):
            await asyncio.wait_for(store.release(ticket, "x"), 10)

        # Nothing was written while the ledger was unreachable.
        assert list(await db.holds(account)) == [ticket.id]
        assert (await db.holds(account))[ticket.id]["status"] == "open"
        assert await db.balance(account) == 900
        await db.consistent(account)
    finally:
        await proxy.cut()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(store.close(), 10)
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_start_on_a_closed_port_fails() -> None:
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    with pytest.raises((LedgerUnavailable, OSError)):
        await asyncio.wait_for(store.start(), 10)
    with pytest.raises(LedgerUnavailable) as caught:
        await asyncio.wait_for(take(store, "acct_x", 1), 10)
    _assert_unavailable(caught.value)
    await store.close()


async def test_sqlite_locked_beyond_the_busy_timeout_fails_closed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    await migrate.upgrade(url)
    engine = create_async_engine(sqlalchemy_url(url))
    db = Db(url, engine)
    store = SqliteStore(sqlite_path(url), busy_timeout_ms=50)
    blocker = sqlite3.connect(sqlite_path(url), isolation_level=None)
    try:
        account = await db.account(1_000)
        await store.start()
        ticket = await must_take(store, account, 100)

        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with pytest.raises(LedgerUnavailable) as caught:
            await asyncio.wait_for(take(store, account, 100), 10)
        _assert_unavailable(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(LedgerUnavailable):
            await asyncio.wait_for(store.settle(ticket, settlement(10)), 10)
        blocker.execute("ROLLBACK")

        # Nothing was written, and the store works again once the lock is gone.
        assert list(await db.holds(account)) == [ticket.id]
        assert await db.balance(account) == 900
        assert await store.settle(ticket, settlement(10))
        assert await take(store, account, 100) is not None
        assert await db.balance(account) == 890
        await db.consistent(account)
    finally:
        blocker.close()
        await store.close()
        await engine.dispose()


async def test_sqlite_start_on_an_unwritable_path_fails(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    store = SqliteStore(blocked / "ledger.db")
    with pytest.raises((LedgerUnavailable, sqlite3.Error)):
        await store.start()


async def test_sqlite_connection_closed_underneath_fails_closed(tmp_path: Path) -> None:
    """Even when the failed batch cannot be rolled back, every waiter gets LedgerUnavailable
    (it once hung forever)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    await migrate.upgrade(url)
    engine = create_async_engine(sqlalchemy_url(url))
    db = Db(url, engine)
    store = SqliteStore(sqlite_path(url))
    try:
        account = await db.account(1_000)
        await store.start()
        ticket = await must_take(store, account, 100)
        store.conn.close()  # the connection dies underneath the store
        with pytest.raises(LedgerUnavailable) as caught:
            await asyncio.wait_for(take(store, account, 100), 5)
        _assert_unavailable(caught.value)
        with pytest.raises(LedgerUnavailable):
            await asyncio.wait_for(store.settle(ticket, settlement(10)), 5)
        assert list(await db.holds(account)) == [ticket.id]
        assert await db.balance(account) == 900
        await db.consistent(account)
    finally:
        with contextlib.suppress(sqlite3.Error):
            await store.close()
        await engine.dispose()


async def test_sqlite_step_after_close_fails_instead_of_hanging(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    await migrate.upgrade(url)
    store = SqliteStore(sqlite_path(url))
    await store.start()
    await store.close()
    with pytest.raises((LedgerUnavailable, RuntimeError)):
        await asyncio.wait_for(take(store, "acct_x", 1), 2)


def test_make_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(make_store(f"sqlite:///{tmp_path / 'x.db'}"), SqliteStore)
    pg = make_store("postgresql://postgres@127.0.0.1:5432/test")
    assert isinstance(pg, PostgresStore)
    assert asyncpg_dsn("postgres://u@h:1/d") == "postgresql://u@h:1/d"


async def test_postgres_pool_size_is_the_configured_one(pg_url: str) -> None:
    """`[database] pool_size`: the PostgreSQL connections a process keeps besides its writer."""
    await migrate.upgrade(pg_url)
    store = make_store(pg_url, pool_size=3)
    assert isinstance(store, PostgresStore)
    await store.start()
    try:
        assert store.pool.get_max_size() == 3
    finally:
        await store.close()


async def test_sqlite_switches_to_wal_while_another_process_writes(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once (no busy wait) while another connection holds
    a write lock, as when two workers start on one new file: the store waits it out."""
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    mine = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        mine.execute("PRAGMA journal_mode=WAL")  # what a start without the wait ran into

    async def commit_later() -> None:
        await asyncio.sleep(0.2)
        other.execute("COMMIT")

    await asyncio.gather(use_wal(mine, 5.0), commit_later())
    assert mine.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    mine.close()
    other.close()
