"""Usage-log rows written in batches off the request path: a request only appends its trace.

Rows are flushed every `flush_seconds` or when `batch_rows` are waiting, `chunk_rows` at a
time (each chunk one statement riding the ledger's next group commit; PostgreSQL: COPY), so
that no single write holds the event loop for long: on SQLite the rows are inserted on the
loop's thread, and 500 rows at once held it about 2.5 ms, a stall every request in flight
then waited out. The log is for reporting; the ledger stays the record of money, so a crash
can lose at most the rows of the last interval, never a charge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from faregate.billing.store import Store, units_json
from faregate.trace import Trace

log = logging.getLogger("faregate.usage")


def row_of(t: Trace) -> tuple[Any, ...]:
    return (
        t.at_ms,
        t.request_id,
        t.key_id,
        t.account_id,
        t.route,
        t.model,
        t.deployment,
        t.prompt_tokens,
        t.completion_tokens,
        t.cost,
        t.latency_ms,
        t.status,
        t.cached,
        t.estimated,
        units_json(t.units),
        t.guard,
    )


class UsageWriter:
    def __init__(
        self,
        store: Store,
        *,
        flush_seconds: float = 0.5,
        batch_rows: int = 1000,
        chunk_rows: int = 64,
        max_pending: int = 100_000,
    ) -> None:
        self._store = store
        self._flush_seconds = flush_seconds
        self._batch_rows = batch_rows
        self._chunk_rows = chunk_rows
        self._max_pending = max_pending
        self._pending: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def record(self, trace: Trace) -> None:
        if len(self._pending) >= self._max_pending:
            self.dropped += 1  # the database is far behind: keep serving, count the loss
            return
        self._pending.append(row_of(trace))
        if len(self._pending) >= self._batch_rows:
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> None:
        rows, self._pending = self._pending, []
        for start in range(0, len(rows), self._chunk_rows):
            try:
                await self._store.write_usage(rows[start : start + self._chunk_rows])
            except asyncio.CancelledError:
                # Stopped while a chunk was under way (it is the store's now): the chunks not
                # handed over yet wait for the next flush, which `close` runs.
                self._pending[:0] = rows[start + self._chunk_rows :]
                raise
            except Exception:
                left = rows[start:]
                log.exception(
                    "could not write %d usage rows; keeping them for the next try", len(left)
                )
                self._pending[:0] = left[: self._max_pending]
                return

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
