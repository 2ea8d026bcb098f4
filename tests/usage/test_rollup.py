"""The daily rollup on SQLite and PostgreSQL: equal to the raw rows, idempotent, late rows
folded into their day, retention of rolled-up rows only, no row lost or counted twice."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import create_async_engine
from usage.rows import TODAY, TOTALS, insert, usage_rows

from faregate.db.engine import AdminDB
from faregate.db.schema import usage_daily, usage_log
from faregate.db.urls import sqlalchemy_url
from faregate.usage import rollup


def expected(c: Connection) -> dict[tuple[str, ...], tuple[int, ...]]:
    """What usage_daily should hold: every raw row, grouped in Python."""
    out: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * 5)
    for r in c.execute(select(usage_log)).mappings():
        day = dt.datetime.fromtimestamp(r["at"] / 1000, dt.UTC).date().isoformat()
        t = out[(day, r["account_id"], r["key_id"], r["model"] or "")]
        t[0] += 1
        t[1] += r["status"] >= 400
        t[2] += r["prompt_tokens"]
        t[3] += r["completion_tokens"]
        t[4] += r["cost"]
    return {k: tuple(v) for k, v in out.items()}


def daily(c: Connection) -> dict[tuple[str, ...], tuple[int, ...]]:
    rows = c.execute(select(usage_daily)).mappings()
    return {
        (r["day"], r["account_id"], r["key_id"], r["model"]): tuple(int(r[t]) for t in TOTALS)
        for r in rows
    }


async def test_rollup_equals_the_raw_rows_and_is_idempotent(db: AdminDB) -> None:
    await insert(db, usage_rows(600))
    assert await db.run(lambda c: rollup.rollup(c, max_rows=250)) == 250  # a first chunk
    moved = await db.run(rollup.rollup)
    assert moved == 350
    want = await db.run(expected)
    assert await db.run(daily) == want
    assert await db.run(rollup.rollup) == 0  # nothing new: nothing changes
    assert await db.run(daily) == want
    assert await db.run(rollup.watermark) == await db.run(rollup.safe_max_id)
    days = await db.run(lambda c: rollup.recompute_days(c, TODAY - dt.timedelta(days=9), TODAY))
    assert days == 5  # the days before the oldest raw row are left alone
    assert await db.run(daily) == want


async def test_late_rows_are_folded_into_their_own_day(db: AdminDB) -> None:
    await insert(db, usage_rows(200))
    await db.run(rollup.rollup)
    late = usage_rows(30, days=1, seed=8, at_day=TODAY - dt.timedelta(days=3))
    await insert(db, late)
    assert await db.run(rollup.rollup) == 30
    assert await db.run(daily) == await db.run(expected)


async def test_retention_deletes_only_old_rolled_up_rows(db: AdminDB) -> None:
    old = usage_rows(100, days=3, seed=1, at_day=TODAY - dt.timedelta(days=10))
    new = usage_rows(100, days=3, seed=2)
    await insert(db, old + new)
    assert await db.run(lambda c: rollup.purge(c, 5)) == 0  # nothing rolled up yet
    want = await db.run(expected)
    rolled, purged = await rollup.run_once(db, retention_days=5)
    assert (rolled, purged) == (200, 100)
    assert await db.run(daily) == want  # the rollup keeps the purged days
    count = await db.run(
        lambda c: c.execute(select(func.count()).select_from(usage_log)).scalar_one()
    )
    assert count == 100
    await db.run(lambda c: rollup.recompute_days(c, TODAY - dt.timedelta(days=30), TODAY))
    assert await db.run(daily) == want


async def test_two_rollups_at_once_count_each_row_once(db: AdminDB) -> None:
    await insert(db, usage_rows(1000))
    await asyncio.gather(*(rollup.run_once(db, 365) for _ in range(4)))
    assert await db.run(daily) == await db.run(expected)


async def test_rollup_loop_runs_until_cancelled(db: AdminDB) -> None:
    await insert(db, usage_rows(50))
    task = asyncio.create_task(rollup.rollup_loop(db, 0.05, 365))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if await db.run(daily):
            break
    await insert(db, usage_rows(50, seed=9))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db.run(daily) == await db.run(expected)


@pytest.mark.postgres
async def test_a_row_committed_late_with_a_lower_id_is_not_skipped(pg_url: str) -> None:
    """PostgreSQL hands out ids at insert and shows rows at commit: a pass must not move the
    watermark past an id whose transaction is still open."""
    from faregate.db import migrate

    await migrate.upgrade(pg_url)
    db = AdminDB(pg_url)
    engine = create_async_engine(sqlalchemy_url(pg_url))
    try:
        async with engine.connect() as slow:
            await slow.begin()
            await slow.execute(usage_log.insert(), usage_rows(1, seed=3))  # takes the lower id
            await insert(db, usage_rows(10, seed=4))  # higher ids, committed first
            task = asyncio.create_task(rollup.run_once(db, 365))
            await asyncio.sleep(0.3)
            assert not task.done()  # waits for the open insert
            await slow.commit()
            assert (await asyncio.wait_for(task, 10))[0] == 11
        assert await db.run(daily) == await db.run(expected)
    finally:
        await engine.dispose()
        await db.dispose()
