"""The ledger on SQLite: inline writes, group-committed once per event-loop tick."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from faregate.billing import holds
from faregate.billing.bounds import MAX_AMOUNT
from faregate.billing.checkpoint import Checkpointer
from faregate.billing.steps import Plan, run_sqlite
from faregate.billing.store import (
    KEY_COLUMNS,
    USAGE_COLUMNS,
    BalanceView,
    HoldTicket,
    IdemClaim,
    LedgerUnavailable,
    SpendLimited,
    SpendWindow,
    StoredResult,
    claim_of,
    key_record,
    ledger_detail,
    new_id,
    now_ms,
    overrun,
    release_detail,
    spend_of,
    spend_refusal,
)
from faregate.billing.types import KeyRecord, Settlement

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
Step = tuple[Op, "asyncio.Future[Any]", "asyncio.Future[None] | None"]
"""A money step: what to run, its result, and (for a hold) when it is on disk."""

LONE_GAP = 0.0002
"""A step that comes this long (seconds) after the last commit has nobody to share a commit
with: it is committed at once, instead of on the next loop tick (two loop iterations saved).
Steps closer together, as under load, wait for the tick and share its commit."""

# The statements are the ones every ledger runs (billing/holds.py).
_HOLD_DEBIT, _HOLD_ROW, _SPEND_ROW, _SPENT = (
    holds.HOLD_DEBIT,
    holds.HOLD_ROW,
    holds.SPEND_ROW,
    holds.SPENT,
)
_SPEND_ADD, _CLOSE, _CREDIT, _LEDGER = holds.SPEND_ADD, holds.CLOSE, holds.CREDIT, holds.LEDGER


class SqliteStore:
    """Synchronous sqlite3 on the event loop thread: each step is microseconds. Steps that
    come together (under load) join the batch committed on the next loop tick, so one commit
    serves all of them; a lone step is committed at once."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        self.instance_id = new_id("inst")
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._pending: list[Step] = []
        self._scheduled = False
        self._last_commit = 0.0
        self._open: tuple[list[Step], list[Any]] | None = None
        self._overlap = True
        self.checkpointer = Checkpointer(path, busy_timeout_ms=busy_timeout_ms)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store not started")
        return self._conn

    async def start(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn
        ts = now_ms()
        await self._submit(
            lambda c: c.execute(
                "INSERT INTO instances (id, started_at, heartbeat_at) VALUES (?, ?, ?)",
                (self.instance_id, ts, ts),
            )
        )
        self.checkpointer.start(conn)

    async def close(self) -> None:
        self.finish_open()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute("DELETE FROM instances WHERE id = ?", (self.instance_id,))
                conn.close()
            finally:
                self.checkpointer.stop()

    # -- group commit --------------------------------------------------------------

    def _submit(self, op: Op, durable: asyncio.Future[None] | None = None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, fut, durable))
        if not self._scheduled:
            if time.monotonic() - self._last_commit > LONE_GAP:
                self._flush()  # a lone step: run now, its future already done
            else:
                self._scheduled = True
                loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        """Run the pending steps in one transaction. When the batch holds credits (and the last
        commit worked), the holds' requests go on as soon as the debits are made under the
        write lock, and the COMMIT runs on the next loop callback, while their upstream calls
        are under way; everything else waits for the commit."""
        self.finish_open()
        batch, self._pending, self._scheduled = self._pending, [], False
        results: list[Any] = []
        conn = self._conn
        try:
            if conn is None:
                raise sqlite3.ProgrammingError("the ledger store is closed")
            conn.execute("BEGIN IMMEDIATE")
            for op, _, _ in batch:
                results.append(op(conn))
            if self._overlap and any(durable is not None for _, _, durable in batch):
                self._open = (batch, results)
                for (_, fut, durable), result in zip(batch, results, strict=True):
                    if durable is not None and not fut.done():
                        fut.set_result(result)
                asyncio.get_running_loop().call_soon(self.finish_open)
                return
            conn.execute("COMMIT")
        except Exception as exc:  # the whole batch fails closed
            self._failed(batch, exc, conn)
            return
        self._committed(batch, results)

    def finish_open(self) -> None:
        """Commit the transaction whose holds went ahead (a no-op when none is open). Also
        called before another connection of this thread writes: it would wait on this lock."""
        if self._open is None:
            return
        (batch, results), self._open = self._open, None
        try:
            if self._conn is None:
                raise sqlite3.ProgrammingError("the ledger store is closed")
            self._conn.execute("COMMIT")
        except Exception as exc:
            # Until a commit works again, holds are committed before their upstream calls:
            # one failing disk costs at most this one batch of calls.
            self._overlap = False
            self._failed(batch, exc, self._conn)
            return
        self._committed(batch, results)

    def _committed(self, batch: list[Step], results: list[Any]) -> None:
        self._overlap = True
        self.checkpointer.committed()
        self._last_commit = time.monotonic()  # from the end: a slow commit leaves a queue
        for (_, fut, durable), result in zip(batch, results, strict=True):
            if durable is not None and not durable.done():
                durable.set_result(None)
            if not fut.done():
                fut.set_result(result)

    def _failed(self, batch: list[Step], exc: Exception, conn: sqlite3.Connection | None) -> None:
        self._last_commit = time.monotonic()
        exc = LedgerUnavailable.wrap(exc)
        with contextlib.suppress(sqlite3.Error, AttributeError):
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")
        for _, fut, durable in batch:
            if durable is not None and not durable.done():
                if fut.done():  # a hold that went ahead: its request learns from `durable`
                    durable.set_exception(exc)
                    durable.exception()  # retrieved by Charge; never logged as unretrieved
                else:
                    durable.cancel()
            if not fut.done():
                fut.set_exception(exc)

    # -- steps written once for both ledgers (billing/steps.py) --------------------------

    def run(self, account_id: str, plan: Plan[T]) -> asyncio.Future[T]:
        """Run a plan as a money step, in the next group commit."""
        return self._submit(lambda c: run_sqlite(c, plan))

    async def write(self, plan: Plan[T]) -> T:
        """A step that changes no money: the group commit too (one writer at a time)."""
        return await self._submit(lambda c: run_sqlite(c, plan))  # type: ignore[no-any-return]

    async def read(self, plan: Plan[T]) -> T:
        """Run a plan of reads outside the group commit."""
        return run_sqlite(self.conn, plan)

    # -- reads -----------------------------------------------------------------------

    async def find_key(self, key_hash: str) -> KeyRecord | None:
        row = self.conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id"
            " WHERE k.key_hash = ?",
            (key_hash,),
        ).fetchone()
        return None if row is None else key_record(row)

    async def balance(self, account_id: str) -> BalanceView:
        row = self.conn.execute(
            "SELECT a.balance, COALESCE(SUM(h.amount), 0), COUNT(h.id) FROM accounts a"
            " LEFT JOIN holds h ON h.account_id = a.id AND h.status = 'open'"
            " WHERE a.id = ? GROUP BY a.id",
            (account_id,),
        ).fetchone()
        if row is None:
            return BalanceView(0, 0, 0)
        return BalanceView(int(row[0]), int(row[1]), int(row[2]))

    # -- the three money steps ---------------------------------------------------------

    async def hold(
        self,
        *,
        account_id: str,
        key_id: str | None,
        amount: int,
        model: str,
        request_id: str,
        ttl_ms: int,
        spend: tuple[SpendWindow, ...] = (),
        overlap: bool = False,
    ) -> HoldTicket | None:
        if amount > MAX_AMOUNT:  # above any balance: refused before SQL binds it
            return None
        durable: asyncio.Future[None] | None = (
            asyncio.get_running_loop().create_future() if overlap else None
        )
        ticket = HoldTicket(
            new_id("hold"), account_id, key_id, amount, model, tuple(w.ref for w in spend), durable
        )
        ts = now_ms()
        windows = orjson.dumps(ticket.spend).decode() if spend else None

        def op(c: sqlite3.Connection) -> bool | SpendLimited:
            for w in spend:  # the batch runs alone (BEGIN IMMEDIATE): read, then write
                c.execute(_SPEND_ROW, w.ref)
                spent = int(c.execute(_SPENT, w.ref).fetchone()[0])
                if spent + amount > w.limit:
                    return spend_refusal(w, amount, spent)
            if c.execute(_HOLD_DEBIT, (amount, account_id, amount)).rowcount != 1:
                return False
            for w in spend:
                c.execute(_SPEND_ADD, (amount, *w.ref))
            c.execute(
                _HOLD_ROW,
                (
                    ticket.id,
                    account_id,
                    key_id,
                    amount,
                    model,
                    request_id,
                    self.instance_id,
                    ts,
                    ts + ttl_ms,
                    windows,
                    None,  # owner: the request
                ),
            )
            c.execute(
                _LEDGER,
                (
                    account_id,
                    "hold",
                    -amount,
                    ticket.id,
                    key_id,
                    model,
                    None,
                    None,
                    None,
                    None,
                    None,
                    False,
                    None,
                    None,
                    ts,
                ),
            )
            return True

        outcome = await self._submit(op, durable)
        if isinstance(outcome, SpendLimited):
            raise outcome
        return ticket if outcome else None

    # Settle and release return the batch's future itself: shielding it starts no task.

    def settle(self, ticket: HoldTicket, settlement: Settlement) -> asyncio.Future[bool]:
        detail = ledger_detail(settlement)
        cost, refund = settlement.cost, ticket.amount - settlement.cost
        return self._submit(lambda c: _close(c, ticket, "settled", cost, refund, detail))

    def release(self, ticket: HoldTicket, note: str) -> asyncio.Future[bool]:
        detail = release_detail(note)
        return self._submit(lambda c: _close(c, ticket, "released", 0, ticket.amount, detail))

    # -- usage log -------------------------------------------------------------------

    async def write_usage(self, rows: list[tuple[Any, ...]]) -> None:
        sql = (
            f"INSERT INTO usage_log ({', '.join(USAGE_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(USAGE_COLUMNS))})"
        )
        await self._submit(lambda c: c.executemany(sql, rows))

    # -- idempotency keys --------------------------------------------------------------

    async def idem_claim(
        self, key_id: str, idem_key: str, body_hash: str, ttl_ms: int, running_ms: int
    ) -> IdemClaim:
        ts = now_ms()

        def op(c: sqlite3.Connection) -> IdemClaim:
            c.execute(
                "DELETE FROM idempotency WHERE key_id = ? AND idem_key = ? AND (expires_at < ?"
                " OR (state = 'running' AND created_at < ?))",
                (key_id, idem_key, ts, ts - running_ms),
            )
            inserted = c.execute(
                "INSERT INTO idempotency (key_id, idem_key, body_hash, state, created_at,"
                " expires_at) VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT DO NOTHING",
                (key_id, idem_key, body_hash, ts, ts + ttl_ms),
            ).rowcount
            if inserted == 1:
                return "claimed"
            row = c.execute(
                "SELECT body_hash, state, status, headers, body FROM idempotency"
                " WHERE key_id = ? AND idem_key = ?",
                (key_id, idem_key),
            ).fetchone()
            return claim_of(row, body_hash)

        result: IdemClaim = await self._submit(op)
        return result

    async def idem_finish(self, key_id: str, idem_key: str, result: StoredResult) -> None:
        headers = orjson.dumps(result.headers).decode()
        await self._submit(
            lambda c: c.execute(
                "UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ?"
                " WHERE key_id = ? AND idem_key = ?",
                (result.status, headers, result.body, key_id, idem_key),
            )
        )

    async def idem_forget(self, key_id: str, idem_key: str) -> None:
        await self._submit(
            lambda c: c.execute(
                "DELETE FROM idempotency WHERE key_id = ? AND idem_key = ?", (key_id, idem_key)
            )
        )

    # -- crash recovery --------------------------------------------------------------

    async def heartbeat(self) -> None:
        # An upsert: a process wrongly taken for dead (a long stall) comes back to life.
        ts = now_ms()
        await self._submit(
            lambda c: c.execute(
                "INSERT INTO instances (id, started_at, heartbeat_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (self.instance_id, ts, ts),
            )
        )

    async def reap(self, *, stale_ms: int) -> int:
        ts = now_ms()
        rows = self.conn.execute(
            "SELECT id, account_id, key_id, amount, model, spend_windows FROM holds"
            " WHERE status = 'open' AND owner IS NULL"
            " AND (expires_at < ? OR (instance_id != ? AND instance_id NOT IN"
            " (SELECT id FROM instances WHERE heartbeat_at >= ?)))",
            (ts, self.instance_id, ts - stale_ms),
        ).fetchall()
        released = 0
        for row in rows:
            ticket = HoldTicket(row[0], row[1], row[2], int(row[3]), row[4] or "", spend_of(row[5]))
            released += await self.release(ticket, "reaped: hold expired or its process died")
        await self._submit(
            lambda c: c.execute(
                "DELETE FROM instances WHERE heartbeat_at < ? AND id != ?",
                (ts - stale_ms, self.instance_id),
            )
        )
        await self._submit(
            lambda c: c.execute("DELETE FROM idempotency WHERE expires_at < ?", (ts,))
        )
        return released


def _close(
    c: sqlite3.Connection,
    ticket: HoldTicket,
    status: str,
    cost: int,
    refund: int,
    detail: tuple[Any, ...],
) -> bool:
    ts = now_ms()
    if refund < 0:  # the upstream billed past the worst case: collect what the balance allows
        row = c.execute("SELECT balance FROM accounts WHERE id = ?", (ticket.account_id,))
        cost, refund, detail = overrun(ticket, cost, int(row.fetchone()[0]), detail)
    if c.execute(_CLOSE, (status, ts, cost, ticket.id)).rowcount != 1:
        return False
    if refund:
        c.execute(_CREDIT, (refund, ticket.account_id))
        for ref in ticket.spend:  # what is given back no longer counts as spent
            c.execute(_SPEND_ADD, (-refund, *ref))
    kind = "settle" if status == "settled" else "release"
    c.execute(
        _LEDGER,
        (
            ticket.account_id,
            kind,
            refund,
            ticket.id,
            ticket.key_id,
            ticket.model,
            cost if kind == "settle" else None,
            *detail,
            ts,
        ),
    )
    return True
