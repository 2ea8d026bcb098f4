"""The ledger on PostgreSQL (asyncpg): holds and settles group-committed on one writer."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import asyncpg

from faregate.billing.holds import PIPELINED
from faregate.billing.ledger import INSTANCE, GroupLedger
from faregate.billing.steps import Plan, Query, pg_sql, run_postgres
from faregate.billing.store import USAGE_COLUMNS, LedgerUnavailable, new_id, now_ms

T = TypeVar("T")
Step = tuple[str, Plan[Any], "asyncio.Future[Any]", bool]
"""A money step: its account (the lock order), its plan, its result, and whether the plan is
a single statement."""


class PostgresStore(GroupLedger):
    """One writer connection commits every pending step in one transaction; steps run in
    account order, so concurrent batches from several replicas lock rows in the same order
    and cannot deadlock. Each request still waits for its own commit. A batch whose steps are
    each one statement (a hold without spend windows, a close without them and without
    overrun) is one round trip: the statement pipelined once per step under one Sync."""

    def __init__(self, dsn: str, *, pool_size: int = 8) -> None:
        self.instance_id = new_id("inst")
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._writer: asyncpg.Connection | None = None
        self._pending: list[Step] = []
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
        await self._pool.execute(pg_sql(INSTANCE), self.instance_id, ts, ts)

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

    def step(
        self,
        account_id: str,
        plan: Plan[Any],
        durable: asyncio.Future[None] | None = None,
        *,
        single: bool = False,
    ) -> asyncio.Future[Any]:
        """Run `plan` in the writer's next batch, in `account_id`'s place of the lock order
        (every hold is committed before its ticket is handed out: `durable` is never asked).
        A batch of `single` steps runs without BEGIN and COMMIT: the pipelined statements
        before one Sync are one implicit transaction."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self._pool is None and self._started:
            fut.set_exception(LedgerUnavailable("The ledger store is closed.", retry_after=5))
            return fut
        self._pending.append((account_id, plan, fut, single))
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

    async def _flush(self, batch: list[Step]) -> None:
        firsts: list[Query | None] = []
        bound: list[tuple[Any, ...]] | None = []
        for _, plan, fut, single in batch:
            try:
                first: Query | None = next(plan)
            except StopIteration as stop:  # decided without a statement
                fut.set_result(stop.value)
                first = None
            firsts.append(first)
            if bound is not None and first is not None:
                args = PIPELINED.bind(first) if single else None
                if args is None:
                    bound = None  # a step of its own kind: the batch runs in a transaction
                else:
                    bound.append(args)
        try:
            if self._writer is None or self._writer.is_closed():
                self._writer = await asyncpg.connect(self._dsn)
            if bound is not None:
                results = [row[0] for row in await self._writer.fetchmany(PIPELINED.sql, bound)]
            else:
                results = []
                async with self._writer.transaction():
                    for (_, plan, _, _), first in zip(batch, firsts, strict=True):
                        if first is not None:
                            results.append(await run_postgres(self._writer, plan, first))
        except Exception as exc:  # the whole batch fails closed
            exc = LedgerUnavailable.wrap(exc)
            if self._writer is not None and self._writer.is_closed():
                self._writer = None
            for _, _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        answers = iter(results)
        for (_, plan, fut, _), first in zip(batch, firsts, strict=True):
            if first is None:
                continue
            result = next(answers)
            if fut.done():
                continue
            if bound is None:
                fut.set_result(result)
                continue
            try:
                fut.set_result(_finish(plan, result))
            except RuntimeError as exc:
                fut.set_exception(exc)

    # -- the ledger's steps (billing/ledger.py) --------------------------------------------

    async def write(self, plan: Plan[T]) -> T:
        """A step that changes no money: its own transaction on a pooled connection, apart
        from the writer's batches (whose account locks it must never wait on)."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await run_postgres(conn, plan)

    async def read(self, plan: Plan[T]) -> T:
        """Run a plan of reads on a pooled connection."""
        async with self.pool.acquire() as conn:
            return await run_postgres(conn, plan)

    # -- usage log -------------------------------------------------------------------

    async def write_usage(self, rows: list[tuple[Any, ...]]) -> None:
        async with self.pool.acquire() as conn:
            await conn.copy_records_to_table("usage_log", records=rows, columns=USAGE_COLUMNS)


def _finish(plan: Plan[T], result: Any) -> T:
    """The outcome of a one-statement plan given its statement's result."""
    try:
        plan.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise RuntimeError("a step marked single asked for a second statement")
