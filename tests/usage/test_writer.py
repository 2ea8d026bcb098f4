"""The usage writer: rows leave in small chunks, and a failed write keeps what was not written."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from faregate.billing.store import Store
from faregate.trace import Trace
from faregate.usage.writer import UsageWriter


class Rows:
    """A store that records each usage write, failing the writes it is told to."""

    def __init__(self, fail_at: set[int] | None = None) -> None:
        self.writes: list[list[tuple[Any, ...]]] = []
        self.calls = 0
        self.fail_at = fail_at or set()

    async def write_usage(self, rows: list[tuple[Any, ...]]) -> None:
        self.calls += 1
        if self.calls in self.fail_at:
            raise OSError("disk full")
        self.writes.append(rows)


def traces(n: int) -> list[Trace]:
    return [Trace("chat", request_id=f"req_{i}") for i in range(n)]


async def test_rows_are_written_in_chunks_in_order() -> None:
    store = Rows()
    writer = UsageWriter(cast(Store, store), chunk_rows=64)
    for t in traces(150):
        writer.record(t)
    await writer.flush()
    assert [len(w) for w in store.writes] == [64, 64, 22]
    ids = [row[1] for w in store.writes for row in w]
    assert ids == [f"req_{i}" for i in range(150)]


async def test_a_failed_chunk_keeps_it_and_the_rest_for_the_next_flush() -> None:
    store = Rows(fail_at={2})
    writer = UsageWriter(cast(Store, store), chunk_rows=64)
    for t in traces(150):
        writer.record(t)
    await writer.flush()  # the first chunk lands, the second fails
    assert [len(w) for w in store.writes] == [64]
    await writer.flush()
    ids = [row[1] for w in store.writes for row in w]
    assert ids == [f"req_{i}" for i in range(150)]  # nothing lost, nothing twice


class Slow(Rows):
    """A store whose writes wait until released, as rows riding the next commits do."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def write_usage(self, rows: list[tuple[Any, ...]]) -> None:
        self.writes.append(rows)  # handed over: the store writes it, whatever happens next
        await self.release.wait()


async def test_stopping_mid_flush_keeps_the_chunks_not_handed_over() -> None:
    store = Slow()
    writer = UsageWriter(cast(Store, store), chunk_rows=64)
    for t in traces(150):
        writer.record(t)
    flushing = asyncio.ensure_future(writer.flush())
    await asyncio.sleep(0)
    assert [len(w) for w in store.writes] == [64]  # the first chunk is the store's
    flushing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flushing
    store.release.set()
    await writer.close()  # the stop's last flush
    ids = [row[1] for w in store.writes for row in w]
    assert ids == [f"req_{i}" for i in range(150)]  # nothing lost, nothing twice
