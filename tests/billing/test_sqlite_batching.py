"""SQLite group commit: a lone step is committed at once; steps that come together share the
commit of the next loop tick."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faregate.billing import sqlite as sqlite_store
from faregate.billing.sqlite import SqliteStore
from faregate.billing.store import HoldTicket, Settlement
from faregate.db import migrate

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
