"""The ledger on SQLite: inline writes, group-committed once per event-loop tick."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any, TypeVar

from faregate.billing.checkpoint import Checkpointer
from faregate.billing.ledger import INSTANCE, GroupLedger
from faregate.billing.riders import Riders, Slice
from faregate.billing.steps import Plan, n, run_sqlite
from faregate.billing.store import USAGE_COLUMNS, LedgerUnavailable, new_id, now_ms

T = TypeVar("T")
Step = tuple[Plan[Any], "asyncio.Future[Any]", "asyncio.Future[None] | None"]
"""A step: its plan, its result, and (for a hold) when it is on disk."""

LONE_GAP = 0.0002
"""A step that comes this long (seconds) after the last commit has nobody to share a commit
with: it is committed at once, instead of on the next loop tick (two loop iterations saved).
Steps closer together, as under load, wait for the tick and share its commit."""

RIDE_WAIT = 0.1
"""Usage rows wait at most this long (seconds) for a commit to ride; when the store has made
no commit for that long (it is idle), they get commits of their own."""

ALONE_ROWS = 64
"""Usage rows a commit of their own carries."""

USAGE_INSERT = (
    f"INSERT INTO usage_log ({', '.join(USAGE_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(USAGE_COLUMNS))})"
)


class SqliteStore(GroupLedger):
    """Synchronous sqlite3 on the event loop thread: each step is microseconds. Steps that
    come together (under load) join the batch committed on the next loop tick, so one commit
    serves all of them; a lone step is committed at once."""

    overlaps = True

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        self.instance_id = new_id("inst")
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None
        """One cursor for every statement: `Connection.execute` makes (and registers) a new
        cursor per statement, several per request."""
        self._pending: list[Step] = []
        self._scheduled = False
        self._last_commit = 0.0
        self._open: tuple[list[Step], list[Any]] | None = None
        self._overlap = True
        self._riders = Riders()
        """Usage rows waiting to ride the next commits: a few per commit, in proportion to
        its steps, so their cost spreads over the requests instead of stalling one."""
        self._ride_timer: asyncio.TimerHandle | None = None
        self.checkpointer = Checkpointer(path, busy_timeout_ms=busy_timeout_ms)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store not started")
        return self._conn

    async def start(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        await use_wal(conn, self._busy_timeout_ms / 1000)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn
        self._cursor = conn.cursor()
        ts = now_ms()
        await self.step("", _write(INSTANCE, self.instance_id, ts, ts))
        self.checkpointer.start(conn)

    async def close(self) -> None:
        self.finish_open()
        if self._ride_timer is not None:
            self._ride_timer.cancel()
            self._ride_timer = None
        while self._riders.waiting and self._conn is not None:
            waiting = self._riders.waiting
            self._flush(ALONE_ROWS)
            if self._riders.waiting >= waiting:
                break  # the commit failed: what is left is lost with the store
        self._riders.abandon(LedgerUnavailable("the ledger store is closed"))
        if self._conn is not None:
            conn, self._conn, self._cursor = self._conn, None, None
            try:
                conn.execute("DELETE FROM instances WHERE id = ?", (self.instance_id,))
                conn.close()
            finally:
                self.checkpointer.stop()

    # -- group commit --------------------------------------------------------------

    def step(
        self,
        account_id: str,
        plan: Plan[Any],
        durable: asyncio.Future[None] | None = None,
        *,
        single: bool = False,
    ) -> asyncio.Future[Any]:
        """Run `plan` in the next group commit (one writer: `account_id` orders nothing)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((plan, fut, durable))
        if not self._scheduled:
            if time.monotonic() - self._last_commit > LONE_GAP:
                self._flush()  # a lone step: run now, its future already done
            else:
                self._scheduled = True
                loop.call_soon(self._flush)
        return fut

    def _flush(self, carry: int | None = None) -> None:
        """Run the pending steps in one transaction. When the batch holds credits (and the last
        commit worked), the holds' requests go on as soon as the debits are made under the
        write lock, and the COMMIT runs on the next loop callback, while their upstream calls
        are under way; everything else waits for the commit. Either way a few waiting usage
        rows ride along (`carry` of them, else as many as the batch has steps)."""
        self.finish_open()
        batch, self._pending, self._scheduled = self._pending, [], False
        results: list[Any] = []
        conn, cursor = self._conn, self._cursor
        slices: list[Slice] = []
        try:
            if conn is None or cursor is None:
                raise sqlite3.ProgrammingError("the ledger store is closed")
            cursor.execute("BEGIN IMMEDIATE")
            for plan, _, _ in batch:
                results.append(run_sqlite(cursor, plan))
            if self._overlap and any(durable is not None for _, _, durable in batch):
                self._open = (batch, results)
                for (_, fut, durable), result in zip(batch, results, strict=True):
                    if durable is not None and not fut.done():
                        fut.set_result(result)
                asyncio.get_running_loop().call_soon(self.finish_open)
                return
            slices = self._carry(cursor, len(batch) if carry is None else carry)
            cursor.execute("COMMIT")
        except Exception as exc:  # the whole batch fails closed
            self._failed(batch, exc, conn, slices)
            return
        self._committed(batch, results, slices)

    def _carry(self, cursor: sqlite3.Cursor, limit: int) -> list[Slice]:
        """Insert up to `limit` waiting usage rows in the open transaction."""
        if not self._riders.waiting or limit <= 0:
            return []
        rows, slices = self._riders.take(limit)
        try:
            cursor.executemany(USAGE_INSERT, rows)
        except Exception as exc:
            self._riders.failed(slices, LedgerUnavailable.wrap(exc))
            raise
        return slices

    def finish_open(self) -> None:
        """Commit the transaction whose holds went ahead (a no-op when none is open). Also
        called before another connection of this thread writes: it would wait on this lock."""
        if self._open is None:
            return
        (batch, results), self._open = self._open, None
        slices: list[Slice] = []
        try:
            if self._cursor is None:
                raise sqlite3.ProgrammingError("the ledger store is closed")
            # The holds' upstream calls are under way: the rows ride here for free, more of
            # them than in a commit that a response waits for.
            slices = self._carry(self._cursor, 4 + 2 * len(batch))
            self._cursor.execute("COMMIT")
        except Exception as exc:
            # Until a commit works again, holds are committed before their upstream calls:
            # one failing disk costs at most this one batch of calls.
            self._overlap = False
            self._failed(batch, exc, self._conn, slices)
            return
        self._committed(batch, results, slices)

    def _committed(self, batch: list[Step], results: list[Any], slices: list[Slice]) -> None:
        self._overlap = True
        if slices:
            self._riders.committed(slices)
        self.checkpointer.committed()
        self._last_commit = time.monotonic()  # from the end: a slow commit leaves a queue
        for (_, fut, durable), result in zip(batch, results, strict=True):
            if durable is not None and not durable.done():
                durable.set_result(None)
            if not fut.done():
                fut.set_result(result)

    def _failed(
        self,
        batch: list[Step],
        exc: Exception,
        conn: sqlite3.Connection | None,
        slices: list[Slice],
    ) -> None:
        self._last_commit = time.monotonic()
        exc = LedgerUnavailable.wrap(exc)
        with contextlib.suppress(sqlite3.Error, AttributeError):
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")
        self._riders.failed(slices, exc)
        for _, fut, durable in batch:
            if durable is not None and not durable.done():
                if fut.done():  # a hold that went ahead: its request learns from `durable`
                    durable.set_exception(exc)
                    durable.exception()  # retrieved by Charge; never logged as unretrieved
                else:
                    durable.cancel()
            if not fut.done():
                fut.set_exception(exc)

    # -- the ledger's steps (billing/ledger.py) --------------------------------------------

    async def write(self, plan: Plan[T]) -> T:
        """A step that changes no money: the group commit too (one writer at a time)."""
        return await self.step("", plan)  # type: ignore[no-any-return]

    async def read(self, plan: Plan[T]) -> T:
        """Run a plan of reads outside the group commit."""
        return run_sqlite(self._cursor or self.conn, plan)

    # -- usage log -------------------------------------------------------------------

    async def write_usage(self, rows: list[tuple[Any, ...]]) -> None:
        """The rows ride the next commits, a few each; they get commits of their own only
        when the store is idle (no commit for `RIDE_WAIT`)."""
        if self._conn is None:
            raise LedgerUnavailable("the ledger store is closed")
        done = self._riders.add(rows)
        if not done.done():
            self._ride_if_idle()
        await done

    def _ride_if_idle(self) -> None:
        """Waiting rows get a commit of their own if the store has made none for `RIDE_WAIT`
        (while rows wait, every commit carries some); if rows still wait, look again then."""
        idle = time.monotonic() - self._last_commit >= RIDE_WAIT
        if idle and not self._scheduled:
            self._flush(ALONE_ROWS)
        if self._riders.waiting and self._ride_timer is None:
            loop = asyncio.get_running_loop()
            self._ride_timer = loop.call_later(RIDE_WAIT, self._ride_alone)

    def _ride_alone(self) -> None:
        self._ride_timer = None
        if self._riders.waiting:
            self._ride_if_idle()


def _write(sql: str, *args: Any) -> Plan[int]:
    return (yield n(sql, *args))  # type: ignore[no-any-return]


async def use_wal(conn: sqlite3.Connection, patience: float) -> None:
    """Put the database in WAL mode. The switch needs a lock that SQLite refuses at once,
    without its busy wait, while another process starts on the same file: retried for up to
    `patience` seconds; a database already in WAL is left as it is."""
    deadline = time.monotonic() + patience
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.02)
