"""Usage rows ride the SQLite ledger's commits a few at a time; an idle store gives them
commits of their own; a failed commit loses none of them and writes none twice."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_ledger import FailingCommit, started_store

from faregate.billing import sqlite as sqlite_store
from faregate.billing.riders import Riders
from faregate.billing.sqlite import SqliteStore
from faregate.billing.store import HoldTicket, LedgerUnavailable
from faregate.billing.types import Settlement
from faregate.trace import Trace
from faregate.usage.writer import row_of

ACCOUNT = "acct_ride"
WAIT = 0.2  # wider than production's RIDE_WAIT, so a busy test machine cannot blur the cases


@pytest.fixture(autouse=True)
def wide_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "LONE_GAP", WAIT / 4)
    monkeypatch.setattr(sqlite_store, "RIDE_WAIT", WAIT)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await started_store(tmp_path / "ledger.db", ACCOUNT)
    yield s
    await s.close()


def _rows(n: int, tag: str = "r") -> list[tuple[Any, ...]]:
    return [row_of(Trace("chat", request_id=f"{tag}{i}", prompt_tokens=i)) for i in range(n)]


def _written(path: Path) -> list[str]:
    with sqlite3.connect(path) as other:
        return [r[0] for r in other.execute("SELECT request_id FROM usage_log ORDER BY id")]


def _commits(store: SqliteStore) -> list[str]:
    seen: list[str] = []
    store.conn.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen


async def _hold(store: SqliteStore, overlap: bool = False) -> HoldTicket:
    ticket = await store.hold(
        account_id=ACCOUNT,
        key_id=None,
        amount=100,
        model="m",
        request_id="r",
        ttl_ms=60_000,
        overlap=overlap,
    )
    assert ticket is not None
    return ticket


async def test_an_idle_store_writes_the_rows_at_once(store: SqliteStore, tmp_path: Path) -> None:
    await asyncio.sleep(WAIT * 1.5)
    commits = _commits(store)
    await asyncio.wait_for(store.write_usage(_rows(3)), WAIT / 2)
    assert commits == ["COMMIT"]
    assert _written(tmp_path / "ledger.db") == ["r0", "r1", "r2"]


async def test_rows_ride_the_commits_of_requests_a_few_each(
    store: SqliteStore, tmp_path: Path
) -> None:
    ticket = await _hold(store)  # the store has just committed: it is busy
    commits = _commits(store)
    written = asyncio.ensure_future(store.write_usage(_rows(10)))
    await asyncio.sleep(0)
    assert commits == [] and not written.done()  # no commit of their own
    # A settle that a response waits for carries one row per step ...
    assert await store.settle(ticket, Settlement(40, 1, 1))
    assert len(_written(tmp_path / "ledger.db")) == 1
    # ... a hold that went ahead commits while its upstream call runs, and carries more.
    ahead = await _hold(store, overlap=True)
    assert ahead.durable is not None
    await ahead.durable
    assert len(_written(tmp_path / "ledger.db")) == 1 + 6
    assert not written.done()
    other = await _hold(store, overlap=True)
    assert other.durable is not None
    await other.durable
    await asyncio.wait_for(written, WAIT / 2)
    assert commits == ["COMMIT"] * 3  # no commit of the rows' own
    assert _written(tmp_path / "ledger.db") == [f"r{i}" for i in range(10)]


async def test_rows_no_commit_carries_get_commits_of_their_own(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "ALONE_ROWS", 4)
    await _hold(store)
    commits = _commits(store)
    await asyncio.wait_for(store.write_usage(_rows(10)), WAIT * 5)
    assert commits == ["COMMIT"] * 3  # 4 + 4 + 2, after RIDE_WAIT without a carrier
    assert _written(tmp_path / "ledger.db") == [f"r{i}" for i in range(10)]


async def test_a_failed_commit_puts_its_rows_back_and_none_is_written_twice(
    store: SqliteStore, tmp_path: Path
) -> None:
    first = await _hold(store)
    second = await _hold(store)
    written = asyncio.ensure_future(store.write_usage(_rows(2, "a")))
    await asyncio.sleep(0)
    assert await store.settle(first, Settlement(40, 1, 1))  # carries a0
    real = store._cursor
    assert real is not None
    store._cursor = FailingCommit(real)  # type: ignore[assignment]
    with pytest.raises(LedgerUnavailable):
        await store.settle(second, Settlement(40, 1, 1))  # would have carried a1
    assert _written(tmp_path / "ledger.db") == ["a0"]
    assert not written.done()  # partly written: a1 waits for the next commit
    assert await store.settle(second, Settlement(40, 1, 1))
    await asyncio.wait_for(written, WAIT / 2)
    assert _written(tmp_path / "ledger.db") == ["a0", "a1"]

    # Rows none of which was written go back to their writer, which keeps them.
    third = await _hold(store)
    lost = asyncio.ensure_future(store.write_usage(_rows(1, "b")))
    await asyncio.sleep(0)
    store._cursor = FailingCommit(real)  # type: ignore[assignment]
    with pytest.raises(LedgerUnavailable):
        await store.settle(third, Settlement(40, 1, 1))
    with pytest.raises(LedgerUnavailable):
        await lost
    store._cursor = real
    assert _written(tmp_path / "ledger.db") == ["a0", "a1"]


async def test_closing_the_store_writes_what_waits(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    s = await started_store(path, ACCOUNT)  # its first commit: the store is busy, rows wait
    written = asyncio.ensure_future(s.write_usage(_rows(5)))
    await asyncio.sleep(0)
    assert not written.done()
    await s.close()
    await written
    assert _written(path) == [f"r{i}" for i in range(5)]


async def test_the_queue_gives_out_its_front_and_takes_back_what_failed() -> None:
    riders = Riders()
    one = riders.add([(1,), (2,), (3,)])
    two = riders.add([(4,)])
    assert riders.add([]).done()
    rows, taken = riders.take(2)
    assert rows == [(1,), (2,)] and riders.waiting == 2
    rows, more = riders.take(5)  # the commit before has not ended: the rest, in order
    assert rows == [(3,), (4,)] and riders.waiting == 0
    riders.committed(taken)
    assert not one.done()
    riders.failed(more, LedgerUnavailable("disk"))
    assert riders.waiting == 1  # (3,) waits again; (4,)'s ride went back to its writer
    assert isinstance(two.exception(), LedgerUnavailable)
    rows, last = riders.take(10)
    assert rows == [(3,)]
    riders.committed(last)
    assert one.done() and one.exception() is None
    riders.abandon(LedgerUnavailable("closed"))
    assert riders.waiting == 0


class LockedBegin(FailingCommit):
    """The store's cursor, with its next BEGIN failing as a database locked too long would."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "BEGIN IMMEDIATE" and self.fail:
            self.fail = False
            raise sqlite3.OperationalError("database is locked")
        return self.cursor.execute(sql, *args)


async def test_a_failed_commit_that_carried_none_gives_the_waiting_rows_back(
    store: SqliteStore, tmp_path: Path
) -> None:
    ticket = await _hold(store)  # busy: the rows wait for a carrier
    waiting = asyncio.ensure_future(store.write_usage(_rows(3, "w")))
    await asyncio.sleep(0)
    real = store._cursor
    assert real is not None
    store._cursor = LockedBegin(real)  # type: ignore[assignment]
    with pytest.raises(LedgerUnavailable):
        await store.settle(ticket, Settlement(40, 1, 1))  # failed before taking any row
    store._cursor = real
    with pytest.raises(LedgerUnavailable):  # back to the usage writer, as before riding
        await asyncio.wait_for(waiting, WAIT / 2)
    assert store._riders.waiting == 0
    assert _written(tmp_path / "ledger.db") == []


async def test_a_closed_store_refuses_rows_at_once(tmp_path: Path) -> None:
    s = await started_store(tmp_path / "ledger.db", ACCOUNT)
    await s.close()
    with pytest.raises(LedgerUnavailable):
        await asyncio.wait_for(s.write_usage(_rows(1)), WAIT / 2)
