"""The daily rollup of `usage_log` into `usage_daily`, and the retention of raw rows.

`usage_daily` holds, per UTC day, account, key and model, the totals of every `usage_log` row
whose id is at or below a watermark (`usage_rollup_state.last_id`). A pass folds the rows past
the watermark into it (an upsert that adds) and moves the watermark, in one transaction: a
pass never counts a row twice, re-running it changes nothing, and a late row (written after
its day ended) is folded into its own day by the next pass. Queries read `usage_daily` plus
the few rows past the watermark, so their answers do not depend on when the rollup last ran.

On PostgreSQL, ids are taken when a row is inserted but become visible when its transaction
commits, so a pass only goes up to the highest id taken under a SHARE lock of `usage_log`
(which waits for the writes in flight): every id below it is committed. Passes of several
processes are serialized by the watermark's row lock. Retention deletes raw rows older than
`retention_days` whole UTC days, and only rows already rolled up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from sqlalchemy import BigInteger, Column, Connection, MetaData, String, Table, text

from faregate.db.engine import AdminDB
from faregate.db.urls import is_sqlite

log = logging.getLogger("faregate.usage")

DAY_MS = 86_400_000
WATERMARK = "last_id"

usage_rollup_state = Table(
    "usage_rollup_state",
    MetaData(),
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

_TOTALS = "requests, errors, prompt_tokens, completion_tokens, cost"
_UPSERT = "ON CONFLICT (day, account_id, key_id, model) DO UPDATE SET " + ", ".join(
    f"{c} = usage_daily.{c} + excluded.{c}" for c in _TOTALS.split(", ")
)


def day_sql(conn: Connection, column: str = "at") -> str:
    """SQL for the UTC day (YYYY-MM-DD) of an epoch-ms column."""
    if conn.dialect.name == "sqlite":
        return f"strftime('%Y-%m-%d', {column} / 1000, 'unixepoch')"
    return f"to_char(to_timestamp({column} / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def day_start_ms(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * DAY_MS


def _aggregate(conn: Connection, where: str) -> str:
    """INSERT ... SELECT of usage_log rows matching `where`, grouped into usage_daily keys."""
    return (
        f"INSERT INTO usage_daily (day, account_id, key_id, model, {_TOTALS}) "
        f"SELECT {day_sql(conn)}, COALESCE(account_id, ''), COALESCE(key_id, ''),"
        " COALESCE(SUBSTR(model, 1, 200), ''), COUNT(*),"
        " SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens),"
        f" SUM(completion_tokens), SUM(cost) FROM usage_log WHERE {where} GROUP BY 1, 2, 3, 4 "
    )


def _lock_watermark(conn: Connection) -> int:
    """Take the watermark's row (the write lock on SQLite) and return it."""
    params = {"n": WATERMARK}
    if conn.execute(
        text("UPDATE usage_rollup_state SET value = value WHERE name = :n"), params
    ).rowcount:
        return int(
            conn.execute(
                text("SELECT value FROM usage_rollup_state WHERE name = :n"), params
            ).scalar_one()
        )
    conn.execute(text("INSERT INTO usage_rollup_state (name, value) VALUES (:n, 0)"), params)
    return 0


def watermark(conn: Connection) -> int:
    """The highest usage_log id counted in usage_daily (no lock)."""
    value = conn.execute(
        text("SELECT value FROM usage_rollup_state WHERE name = :n"), {"n": WATERMARK}
    ).scalar()
    return int(value or 0)


def safe_max_id(conn: Connection) -> int:
    """The highest usage_log id below which every row is committed (see the module doc)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE usage_log IN SHARE MODE"))
    return int(conn.execute(text("SELECT MAX(id) FROM usage_log")).scalar() or 0)


def rollup(conn: Connection, upto: int | None = None, max_rows: int = 50_000) -> int:
    """Fold the usage_log rows past the watermark (at most `max_rows` ids, up to `upto`,
    default `safe_max_id`) into usage_daily; returns how many ids the watermark moved."""
    lo = _lock_watermark(conn)
    hi = min(safe_max_id(conn) if upto is None else upto, lo + max_rows)
    if hi <= lo:
        return 0
    conn.execute(text(_aggregate(conn, "id > :lo AND id <= :hi") + _UPSERT), {"lo": lo, "hi": hi})
    conn.execute(
        text("UPDATE usage_rollup_state SET value = :v WHERE name = :n"),
        {"v": hi, "n": WATERMARK},
    )
    return hi - lo


def recompute_days(conn: Connection, first: dt.date, last: dt.date) -> int:
    """Rebuild usage_daily for the days `first`..`last` from the raw rows at or below the
    watermark (a repair; the result equals what the rollup built). Days before the oldest
    raw row are left alone: retention may have deleted their rows. Returns the days rebuilt."""
    w = _lock_watermark(conn)
    oldest = conn.execute(text("SELECT MIN(at) FROM usage_log")).scalar()
    if oldest is None:
        return 0
    first = max(first, dt.date(1970, 1, 1) + dt.timedelta(days=int(oldest) // DAY_MS))
    if last < first:
        return 0
    params = {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "start": day_start_ms(first),
        "end": day_start_ms(last) + DAY_MS,
        "w": w,
    }
    conn.execute(text("DELETE FROM usage_daily WHERE day >= :first AND day <= :last"), params)
    conn.execute(text(_aggregate(conn, "at >= :start AND at < :end AND id <= :w")), params)
    return (last - first).days + 1


def purge(
    conn: Connection, retention_days: int, now_ms: int | None = None, batch: int = 20_000
) -> int:
    """Delete up to `batch` raw rows older than `retention_days` whole UTC days that are
    already rolled up; returns how many went (call again while it returns `batch`)."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    cutoff = (now // DAY_MS - retention_days) * DAY_MS
    params = {"cutoff": cutoff, "w": watermark(conn), "batch": batch}
    return int(
        conn.execute(
            text(
                "DELETE FROM usage_log WHERE id IN (SELECT id FROM usage_log"
                " WHERE at < :cutoff AND id <= :w ORDER BY at LIMIT :batch)"
            ),
            params,
        ).rowcount
    )


def chunk_rows(db: AdminDB) -> int:
    """Usage rows per rollup transaction: on SQLite, at most ~0.1 s of the loop's thread."""
    return 5_000 if is_sqlite(db.url) else 100_000


async def run_once(db: AdminDB, retention_days: int, max_passes: int = 200) -> tuple[int, int]:
    """Roll up everything committed so far, then apply retention: (ids rolled, rows purged).
    Work goes in small transactions (on SQLite each runs in the loop's thread)."""
    small = is_sqlite(db.url)
    chunk = chunk_rows(db)
    upto = await db.run(safe_max_id)
    rolled = purged = 0
    for _ in range(max_passes):
        moved = await db.run(lambda c: rollup(c, upto, chunk))
        rolled += moved
        if moved < chunk:
            break
        await asyncio.sleep(0)
    batch = 5_000 if small else 20_000
    for _ in range(max_passes):
        gone = await db.run(lambda c: purge(c, retention_days, batch=batch))
        purged += gone
        if gone < batch:
            break
        await asyncio.sleep(0)
    return rolled, purged


async def rollup_loop(db: AdminDB, interval_seconds: float, retention_days: int) -> None:
    """Run `run_once` now and every `interval_seconds` until cancelled; a failed pass is
    logged and retried at the next interval."""
    while True:
        try:
            rolled, purged = await run_once(db, retention_days)
            if rolled or purged:
                log.debug("usage rollup: %d ids rolled up, %d raw rows purged", rolled, purged)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("usage rollup failed; retrying in %.0f s", interval_seconds)
        await asyncio.sleep(interval_seconds)
