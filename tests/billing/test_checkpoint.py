"""WAL checkpoints on their own thread: the log stays bounded and the thread ends with the store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from faregate.billing import checkpoint
from faregate.billing.sqlite import SqliteStore
from faregate.billing.types import Settlement
from faregate.db import migrate

ACCOUNT = "acct_ck"


async def _store(tmp_path: Path) -> SqliteStore:
    path = tmp_path / "ledger.db"
    await migrate.upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO accounts (id, name, balance, created_at) VALUES (?, 'a', ?, 0)",
            (ACCOUNT, 10**15),
        )
    store = SqliteStore(path)
    await store.start()
    return store


async def _hold_and_settle(store: SqliteStore, n: int) -> None:
    for _ in range(n):
        ticket = await store.hold(
            account_id=ACCOUNT, key_id=None, amount=5_000, model="m", request_id="r", ttl_ms=60_000
        )
        assert ticket is not None
        assert await store.settle(ticket, Settlement(1_234, 10, 20))


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "faregate-checkpoint"]


async def test_the_log_stays_bounded_without_inline_checkpoints(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        # The writer checkpoints by itself only past the fallback ...
        fallback = store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert fallback == checkpoint.FALLBACK_PAGES
        # ... and 6,000 commits back to back (~35,000 pages, ~140 MB appended) leave a log of
        # the order of that, while the thread ran along. (A checkpoint of the thread running
        # at the fallback's moment can delay the log's restart by a few commits.)
        await _hold_and_settle(store, 3_000)
        assert store.checkpointer.runs >= 6_000 // checkpoint.WAKE_COMMITS // 4
        wal = tmp_path / "ledger.db-wal"
        assert wal.stat().st_size < 3 * checkpoint.FALLBACK_PAGES * 4_200
        balance = store.conn.execute(
            "SELECT balance FROM accounts WHERE id = ?", (ACCOUNT,)
        ).fetchone()[0]
        assert balance == 10**15 - 3_000 * 1_234
    finally:
        await store.close()


async def test_close_ends_the_thread_and_leaves_a_complete_database(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    assert len(_checkpoint_threads()) == 1
    await _hold_and_settle(store, 50)
    await store.close()
    assert _checkpoint_threads() == []
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        rows = conn.execute("SELECT kind, COUNT(*) FROM ledger GROUP BY kind").fetchall()
    assert dict(rows) == {"hold": 50, "settle": 50}


async def test_close_ends_the_thread_even_when_the_connection_broke(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    store.conn.close()
    with contextlib.suppress(sqlite3.ProgrammingError):
        await store.close()
    assert _checkpoint_threads() == []


async def test_a_database_it_cannot_open_leaves_the_writer_to_its_fallback(
    tmp_path: Path,
) -> None:
    ck = checkpoint.Checkpointer(tmp_path / "missing" / "ledger.db", interval=0.01)
    writer = sqlite3.connect(":memory:")
    ck.start(writer)
    await asyncio.sleep(0.05)
    ck.stop()
    assert ck.runs == 0
    assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == checkpoint.FALLBACK_PAGES
    writer.close()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
async def test_the_thread_runs_at_the_lowest_priority_and_the_loop_at_its_own(
    tmp_path: Path,
) -> None:
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    store = await _store(tmp_path)
    try:
        [thread] = _checkpoint_threads()
        assert thread.native_id is not None
        for _ in range(100):  # the thread lowers itself as it starts
            if os.getpriority(os.PRIO_PROCESS, thread.native_id) == checkpoint.NICE:
                break
            await asyncio.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == checkpoint.NICE == 19
        assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # the event loop's thread: untouched
        await _hold_and_settle(store, 200)
        assert store.checkpointer.runs >= 1
    finally:
        await store.close()
