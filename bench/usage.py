"""Usage-report benchmark: a million usage_log rows, rolled up, then the standard queries.

    .venv/bin/python bench/usage.py [--rows 1000000] [--backend both|sqlite|postgres]

For each backend, on a fresh database (a SQLite file in a temp folder; a new PostgreSQL
database, dropped at the end) built by the migrations: load `--rows` rows spread over 35 days
(200 accounts with 2 keys each, one hot account with 10 % of the traffic, 6 models, ~6 %
errors) in batches (SQLite executemany, PostgreSQL COPY), time the queries with nothing rolled
up, roll everything up (`rollup.run_once`), add a tail of 2,000 rows from the last minute (past
the watermark, as in production), then time each query `--reps` times through `AdminDB`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from faregate.billing.store import USAGE_COLUMNS
from faregate.db import migrate
from faregate.db.engine import AdminDB
from faregate.usage import queries, rollup
from faregate.usage.queries import RequestsQuery, UsageQuery

PG_ADMIN = os.environ.get("FAREGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
DAYS = 35
ACCOUNTS = 200
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "gemini-flash", "embed-small", "sim-small")
HOT = "acct_hot"
HOT_KEY = "key_hot_0"
BATCH = 100_000


def rows(n: int, start_ms: int, span_ms: int, seed: int) -> list[tuple[Any, ...]]:
    """`n` rows in time order over [start, start + span)."""
    rnd = random.Random(seed)
    out = []
    step = span_ms / n
    for i in range(n):
        if rnd.random() < 0.10:
            acct, key = HOT, f"key_hot_{rnd.randrange(2)}"
        else:
            a = rnd.randrange(ACCOUNTS)
            acct, key = f"acct_{a:04d}", f"key_{a:04d}_{rnd.randrange(2)}"
        prompt, completion = rnd.randrange(20, 2000), rnd.randrange(0, 800)
        status = 200 if rnd.random() > 0.06 else rnd.choice((429, 502, 400))
        out.append(
            (
                start_ms + int(i * step),
                f"req_{seed}_{i:08d}",
                key,
                acct,
                "chat",
                rnd.choice(MODELS),
                "dep-1",
                prompt,
                completion if status == 200 else 0,
                (prompt + 2 * completion) if status == 200 else 0,
                rnd.randrange(50, 3000),
                status,
                False,
                False,
            )
        )
    return out


async def load(url: str, dsn: str | None, batches: list[list[tuple[Any, ...]]]) -> None:
    if dsn is not None:
        conn = await asyncpg.connect(dsn)
        try:
            for batch in batches:
                await conn.copy_records_to_table("usage_log", records=batch, columns=USAGE_COLUMNS)
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        return
    path = url.removeprefix("sqlite:///")
    sql = (
        f"INSERT INTO usage_log ({', '.join(USAGE_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(USAGE_COLUMNS))})"
    )
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for batch in batches:
            conn.executemany(sql, batch)
            conn.commit()
        conn.execute("ANALYZE")


def standard(today: dt.date) -> list[tuple[str, Callable[[Any], Any]]]:
    def q(query: UsageQuery) -> Callable[[Any], Any]:
        return lambda c: queries.summary(c, query)

    month = today - dt.timedelta(days=29)
    return [
        ("per day, one account, 30 days", q(UsageQuery("day", month, today, HOT))),
        ("per model, all accounts, 30 days", q(UsageQuery("model", month, today))),
        (
            "per key, one account, 7 days",
            q(UsageQuery("key", today - dt.timedelta(days=6), today, HOT)),
        ),
        ("client's own key, today, per model", q(UsageQuery("model", today, today, None, HOT_KEY))),
        (
            "raw rows, one account, first page of 100",
            lambda c: queries.requests(c, RequestsQuery(month, today, HOT, limit=100)),
        ),
    ]


async def timed(db: AdminDB, fn: Callable[[Any], Any], reps: int) -> tuple[float, float]:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await db.run(fn)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


async def bench(backend: str, n: int, reps: int) -> list[tuple[str, ...]]:
    dsn = None
    tmp = tempfile.TemporaryDirectory(prefix="faregate-bench-")
    if backend == "sqlite":
        url = f"sqlite:///{Path(tmp.name) / 'usage.db'}"
    else:
        name = f"faregate_bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        dsn = url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    out: list[tuple[str, ...]] = []
    db: AdminDB | None = None
    try:
        await migrate.upgrade(url)
        now = int(time.time() * 1000) - 120_000
        start = now - DAYS * rollup.DAY_MS
        t0 = time.perf_counter()
        data = rows(n, start, now - start, 1)
        t1 = time.perf_counter()
        await load(url, dsn, [data[i : i + BATCH] for i in range(0, n, BATCH)])
        t2 = time.perf_counter()
        del data
        print(f"[{backend}] generated {n:,} rows in {t1 - t0:.1f} s, loaded in {t2 - t1:.1f} s")
        db = AdminDB(url)
        today = dt.datetime.now(dt.UTC).date()
        for label, fn in standard(today)[:4]:
            med, worst = await timed(db, fn, 3)
            out.append((backend, f"{label} (nothing rolled up)", f"{med:.1f}", f"{worst:.1f}"))
        t3 = time.perf_counter()
        rolled, _ = await rollup.run_once(db, retention_days=3650)
        t4 = time.perf_counter()
        print(f"[{backend}] rolled up {rolled:,} rows in {t4 - t3:.1f} s")
        out.append(
            (backend, f"rollup of {rolled:,} rows (one pass)", f"{(t4 - t3) * 1000:.0f}", "")
        )
        await load(url, dsn, [rows(2_000, now + 60_000, 60_000, 2)])  # the un-rolled tail
        for label, fn in standard(today):
            med, worst = await timed(db, fn, reps)
            out.append((backend, label, f"{med:.1f}", f"{worst:.1f}"))
        t5 = time.perf_counter()
        moved, _ = await rollup.run_once(db, retention_days=3650)
        t6 = time.perf_counter()
        out.append((backend, f"rollup pass, {moved:,} new rows", f"{(t6 - t5) * 1000:.1f}", ""))
    finally:
        if db is not None:
            await db.dispose()
        if backend == "postgres":
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            await admin.close()
        tmp.cleanup()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--backend", choices=("both", "sqlite", "postgres"), default="both")
    args = parser.parse_args()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    table: list[tuple[str, ...]] = []
    started = time.perf_counter()
    for backend in backends:
        table += await bench(backend, args.rows, args.reps)
    print(f"\n{args.rows:,} usage_log rows over {DAYS} days; {args.reps} repetitions per query\n")
    print("| backend | query | median ms | max ms |")
    print("|---|---|---:|---:|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
