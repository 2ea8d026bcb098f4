"""The ledger on PostgreSQL (asyncpg): holds and settles group-committed on one writer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson

from faregate.billing import holds
from faregate.billing.bounds import MAX_AMOUNT
from faregate.billing.steps import Plan, pg_sql, run_postgres
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
Op = Callable[[asyncpg.Connection], Awaitable[Any]]

# The statements every ledger runs (billing/holds.py), in PostgreSQL's placeholders; the
# spend windows read are locked until the batch commits.
_HOLD_DEBIT, _HOLD_ROW, _SPEND_ROW = (
    pg_sql(holds.HOLD_DEBIT),
    pg_sql(holds.HOLD_ROW),
    pg_sql(holds.SPEND_ROW),
)
_SPENT = pg_sql(holds.SPENT) + " FOR UPDATE"
_SPEND_ADD, _CLOSE, _CREDIT, _LEDGER = (
    pg_sql(holds.SPEND_ADD),
    pg_sql(holds.CLOSE),
    pg_sql(holds.CREDIT),
    pg_sql(holds.LEDGER),
)
_BALANCE = pg_sql(holds.BALANCE) + " FOR UPDATE"


class PostgresStore:
    """One writer connection commits every pending step in one transaction; steps run in
    account order, so concurrent batches from several replicas lock rows in the same order
    and cannot deadlock. Each request still waits for its own commit."""

    def __init__(self, dsn: str, *, pool_size: int = 8) -> None:
        self.instance_id = new_id("inst")
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._writer: asyncpg.Connection | None = None
        self._pending: list[tuple[str, Op, asyncio.Future[Any]]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        self._started = False

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store not started")
        return self._pool

    async def start(self) -> None:
        self._started = True
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size)
        ts = now_ms()
        await self._submit(
            "",
            lambda c: c.execute(
                "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2)",
                self.instance_id,
                ts,
            ),
        )

    async def close(self) -> None:
        if self._pool is None:
            return
        try:
            await self._pool.execute("DELETE FROM instances WHERE id = $1", self.instance_id)
        finally:
            if self._writer is not None:
                await self._writer.close()
                self._writer = None
            await self._pool.close()
            self._pool = None

    # -- group commit --------------------------------------------------------------

    def _submit(self, account_id: str, op: Op) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self._pool is None and self._started:
            fut.set_exception(LedgerUnavailable("The ledger store is closed.", retry_after=5))
            return fut
        self._pending.append((account_id, op, fut))
        if not self._flushing:
            self._flushing = True
            self._flusher = loop.create_task(self._flush_loop())
        return fut

    async def _flush_loop(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                batch.sort(key=lambda item: item[0])
                await self._flush(batch)
        finally:
            self._flushing = False

    async def _flush(self, batch: list[tuple[str, Op, asyncio.Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            if self._writer is None or self._writer.is_closed():
                self._writer = await asyncpg.connect(self._dsn)
            async with self._writer.transaction():
                for _, op, _ in batch:
                    results.append(await op(self._writer))
        except Exception as exc:  # the whole batch fails closed
            exc = LedgerUnavailable.wrap(exc)
            if self._writer is not None and self._writer.is_closed():
                self._writer = None
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, _, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    # -- steps written once for both ledgers (billing/steps.py) --------------------------

    def run(self, account_id: str, plan: Plan[T]) -> asyncio.Future[T]:
        """Run a plan as a money step, in the writer's next batch (in `account_id`'s place of
        the lock order)."""
        return self._submit(account_id, lambda c: run_postgres(c, plan))

    async def write(self, plan: Plan[T]) -> T:
        """A step that changes no money: its own transaction on a pooled connection, apart
        from the writer's batches (whose account locks it must never wait on)."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await run_postgres(conn, plan)

    async def read(self, plan: Plan[T]) -> T:
        """Run a plan of reads on a pooled connection."""
        async with self.pool.acquire() as conn:
            return await run_postgres(conn, plan)

    # -- reads -----------------------------------------------------------------------

    async def find_key(self, key_hash: str) -> KeyRecord | None:
        row = await self.pool.fetchrow(
            f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id"
            " WHERE k.key_hash = $1",
            key_hash,
        )
        return None if row is None else key_record(row)

    async def balance(self, account_id: str) -> BalanceView:
        row = await self.pool.fetchrow(
            "SELECT a.balance, COALESCE(SUM(h.amount), 0), COUNT(h.id) FROM accounts a"
            " LEFT JOIN holds h ON h.account_id = a.id AND h.status = 'open'"
            " WHERE a.id = $1 GROUP BY a.id",
            account_id,
        )
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
        overlap: bool = False,  # each hold is committed before its ticket is handed out
    ) -> HoldTicket | None:
        if amount > MAX_AMOUNT:  # above any balance: refused before SQL binds it
            return None
        ticket = HoldTicket(
            new_id("hold"), account_id, key_id, amount, model, tuple(w.ref for w in spend)
        )
        ts = now_ms()
        windows = orjson.dumps(ticket.spend).decode() if spend else None

        async def op(c: asyncpg.Connection) -> bool | SpendLimited:
            for w in spend:  # lock the windows, then check them all before writing anything
                await c.execute(_SPEND_ROW, *w.ref)
                spent = int(await c.fetchval(_SPENT, *w.ref))
                if spent + amount > w.limit:
                    return spend_refusal(w, amount, spent)
            if await c.execute(_HOLD_DEBIT, amount, account_id, amount) != "UPDATE 1":
                return False
            for w in spend:
                await c.execute(_SPEND_ADD, amount, *w.ref)
            await c.execute(
                _HOLD_ROW,
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
            )
            await c.execute(
                _LEDGER,
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
            )
            return True

        outcome = await self._submit(account_id, op)
        if isinstance(outcome, SpendLimited):
            raise outcome
        return ticket if outcome else None

    async def settle(self, ticket: HoldTicket, settlement: Settlement) -> bool:
        s = settlement
        detail = ledger_detail(s)
        return bool(
            await self._submit(
                ticket.account_id,
                lambda c: _close(c, ticket, "settled", s.cost, ticket.amount - s.cost, detail),
            )
        )

    async def release(self, ticket: HoldTicket, note: str) -> bool:
        detail = release_detail(note)
        return bool(
            await self._submit(
                ticket.account_id,
                lambda c: _close(c, ticket, "released", 0, ticket.amount, detail),
            )
        )

    # -- usage log -------------------------------------------------------------------

    async def write_usage(self, rows: list[tuple[Any, ...]]) -> None:
        async with self.pool.acquire() as conn:
            await conn.copy_records_to_table("usage_log", records=rows, columns=USAGE_COLUMNS)

    # -- idempotency keys --------------------------------------------------------------

    async def idem_claim(
        self, key_id: str, idem_key: str, body_hash: str, ttl_ms: int, running_ms: int
    ) -> IdemClaim:
        ts = now_ms()

        async def op(c: asyncpg.Connection) -> IdemClaim:
            await c.execute(
                "DELETE FROM idempotency WHERE key_id = $1 AND idem_key = $2 AND (expires_at < $3"
                " OR (state = 'running' AND created_at < $4))",
                key_id,
                idem_key,
                ts,
                ts - running_ms,
            )
            inserted = await c.execute(
                "INSERT INTO idempotency (key_id, idem_key, body_hash, state, created_at,"
                " expires_at) VALUES ($1, $2, $3, 'running', $4, $5) ON CONFLICT DO NOTHING",
                key_id,
                idem_key,
                body_hash,
                ts,
                ts + ttl_ms,
            )
            if inserted == "INSERT 0 1":
                return "claimed"
            row = await c.fetchrow(
                "SELECT body_hash, state, status, headers, body FROM idempotency"
                " WHERE key_id = $1 AND idem_key = $2",
                key_id,
                idem_key,
            )
            return claim_of(row, body_hash)

        result: IdemClaim = await self._submit(key_id, op)
        return result

    async def idem_finish(self, key_id: str, idem_key: str, result: StoredResult) -> None:
        await self.pool.execute(
            "UPDATE idempotency SET state = 'done', status = $1, headers = $2, body = $3"
            " WHERE key_id = $4 AND idem_key = $5",
            result.status,
            orjson.dumps(result.headers).decode(),
            result.body,
            key_id,
            idem_key,
        )

    async def idem_forget(self, key_id: str, idem_key: str) -> None:
        await self.pool.execute(
            "DELETE FROM idempotency WHERE key_id = $1 AND idem_key = $2", key_id, idem_key
        )

    # -- crash recovery --------------------------------------------------------------

    async def heartbeat(self) -> None:
        # An upsert: a process wrongly taken for dead (a long stall) comes back to life.
        await self.pool.execute(
            "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2)"
            " ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
            self.instance_id,
            now_ms(),
        )

    async def reap(self, *, stale_ms: int) -> int:
        ts = now_ms()
        rows = await self.pool.fetch(
            "SELECT id, account_id, key_id, amount, model, spend_windows FROM holds"
            " WHERE status = 'open' AND owner IS NULL"
            " AND (expires_at < $1 OR (instance_id != $2 AND instance_id NOT IN"
            " (SELECT id FROM instances WHERE heartbeat_at >= $3)))",
            ts,
            self.instance_id,
            ts - stale_ms,
        )
        released = 0
        for row in rows:
            ticket = HoldTicket(row[0], row[1], row[2], int(row[3]), row[4] or "", spend_of(row[5]))
            released += await self.release(ticket, "reaped: hold expired or its process died")
        await self.pool.execute(
            "DELETE FROM instances WHERE heartbeat_at < $1 AND id != $2",
            ts - stale_ms,
            self.instance_id,
        )
        await self.pool.execute("DELETE FROM idempotency WHERE expires_at < $1", ts)
        return released


async def _close(
    c: asyncpg.Connection,
    ticket: HoldTicket,
    status: str,
    cost: int,
    refund: int,
    detail: tuple[Any, ...],
) -> bool:
    ts = now_ms()
    if refund < 0:  # the upstream billed past the worst case: collect what the balance allows
        balance = await c.fetchval(_BALANCE, ticket.account_id)
        cost, refund, detail = overrun(ticket, cost, int(balance), detail)
    if await c.execute(_CLOSE, status, ts, cost, ticket.id) != "UPDATE 1":
        return False
    if refund:
        await c.execute(_CREDIT, refund, ticket.account_id)
        for ref in ticket.spend:  # what is given back no longer counts as spent
            await c.execute(_SPEND_ADD, -refund, *ref)
    kind = "settle" if status == "settled" else "release"
    await c.execute(
        _LEDGER,
        ticket.account_id,
        kind,
        refund,
        ticket.id,
        ticket.key_id,
        ticket.model,
        cost if kind == "settle" else None,
        *detail,
        ts,
    )
    return True
