"""SQLite group commit: a lone step is committed at once; steps that come together share the
commit of the next loop tick; a request's hold may go ahead while it commits."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlite_ledger import FailingCommit

from faregate.billing import sqlite as sqlite_store
from faregate.billing.charge import Charge
from faregate.billing.sqlite import SqliteStore
from faregate.billing.store import HoldTicket, LedgerUnavailable
from faregate.billing.types import Settlement
from faregate.db import migrate
from faregate.db.engine import AdminDB

ACCOUNT = "acct_batch"
GAP = 0.05  # wider than production's, so a busy test machine cannot blur the two cases


@pytest.fixture(autouse=True)
def wide_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "LONE_GAP", GAP)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    path = tmp_path / "ledger.db"
    await migrate.upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO accounts (id, name, balance, created_at) VALUES (?, 'a', 1000000, 0)",
            (ACCOUNT,),
        )
    s = SqliteStore(path)
    await s.start()
    yield s
    await s.close()


async def _holds(store: SqliteStore, n: int) -> list[HoldTicket]:
    tickets = []
    for _ in range(n):
        t = await store.hold(
            account_id=ACCOUNT, key_id=None, amount=100, model="m", request_id="r", ttl_ms=60_000
        )
        assert t is not None
        tickets.append(t)
    return tickets


def _count_commits(store: SqliteStore) -> list[str]:
    seen: list[str] = []
    store.conn.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen


async def test_a_lone_step_is_committed_before_submit_returns(store: SqliteStore) -> None:
    [ticket] = await _holds(store, 1)
    commits = _count_commits(store)
    await asyncio.sleep(GAP * 2)
    fut = store.settle(ticket, Settlement(40, 1, 1))
    assert fut.done()  # no loop tick needed: nothing else was waiting to be written
    assert await fut is True
    assert commits == ["COMMIT"]


async def test_steps_that_come_together_share_one_commit(store: SqliteStore) -> None:
    tickets = await _holds(store, 5)
    commits = _count_commits(store)
    await asyncio.sleep(GAP * 2)
    futs = [store.settle(t, Settlement(40, 1, 1)) for t in tickets]
    # The first found the store idle; the four right behind it wait for the tick, together.
    assert [f.done() for f in futs] == [True, False, False, False, False]
    assert await asyncio.gather(*futs) == [True] * 5
    assert commits == ["COMMIT", "COMMIT"]
    balance = store.conn.execute("SELECT balance FROM accounts WHERE id = ?", (ACCOUNT,))
    assert balance.fetchone()[0] == 1_000_000 - 5 * 40


# -- holds that go ahead while they commit ----------------------------------------------------


async def _overlapped(store: SqliteStore, amount: int = 100) -> HoldTicket:
    ticket = await store.hold(
        account_id=ACCOUNT,
        key_id=None,
        amount=amount,
        model="m",
        request_id="r",
        ttl_ms=60_000,
        overlap=True,
    )
    assert ticket is not None
    return ticket


def _on_disk(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as other:
        holds = other.execute("SELECT COUNT(*) FROM holds").fetchone()[0]
        balance = other.execute("SELECT balance FROM accounts WHERE id = ?", (ACCOUNT,))
        return int(holds), int(balance.fetchone()[0])


async def test_an_overlapped_hold_goes_ahead_and_is_on_disk_one_callback_later(
    store: SqliteStore, tmp_path: Path
) -> None:
    await asyncio.sleep(GAP * 2)
    ticket = await _overlapped(store)
    assert ticket.durable is not None and not ticket.durable.done()
    assert _on_disk(tmp_path / "ledger.db") == (0, 1_000_000)  # the debit is not committed yet
    await ticket.durable
    assert _on_disk(tmp_path / "ledger.db") == (1, 1_000_000 - 100)
    charge = Charge(store, ticket)
    await charge.settle(Settlement(40, 1, 1))
    assert _on_disk(tmp_path / "ledger.db") == (1, 1_000_000 - 40)


async def test_a_failed_commit_voids_the_hold_and_turns_overlap_off(
    store: SqliteStore, tmp_path: Path
) -> None:
    real = store._cursor
    assert real is not None
    store._cursor = FailingCommit(real)  # type: ignore[assignment]
    await asyncio.sleep(GAP * 2)
    ticket = await _overlapped(store)
    charge = Charge(store, ticket)
    with pytest.raises(LedgerUnavailable):
        await charge.settle(Settlement(40, 1, 1))  # the reply must not go out: 503
    await charge.release("after the failure")  # nothing to give back, nothing written
    assert charge.cost == 0
    assert _on_disk(tmp_path / "ledger.db") == (0, 1_000_000)
    # Until a commit works again, a hold is on disk before its ticket is handed out ...
    second = await _overlapped(store)
    assert second.durable is not None and second.durable.done()
    assert _on_disk(tmp_path / "ledger.db") == (1, 1_000_000 - 100)
    # ... and after that commit worked, holds go ahead again.
    third = await _overlapped(store)
    assert third.durable is not None and not third.durable.done()
    await third.durable
    store._cursor = real


async def test_an_operator_write_first_commits_the_open_hold(
    store: SqliteStore, tmp_path: Path
) -> None:
    admin = AdminDB(f"sqlite:///{tmp_path / 'ledger.db'}", before=store.finish_open)
    try:
        await asyncio.sleep(GAP * 2)
        ticket = await _overlapped(store)
        assert ticket.durable is not None and not ticket.durable.done()
        # Run at once, in this thread: without `before` it would wait on the open
        # transaction's lock, whose commit needs this thread, until the busy timeout.
        await asyncio.wait_for(
            admin.run(
                lambda c: c.execute(
                    text("UPDATE accounts SET name = 'renamed' WHERE id = :a"), {"a": ACCOUNT}
                )
            ),
            2,
        )
        assert ticket.durable.done()
        assert _on_disk(tmp_path / "ledger.db") == (1, 1_000_000 - 100)
    finally:
        await admin.dispose()
