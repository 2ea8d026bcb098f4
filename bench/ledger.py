"""The ledger alone: CPU per hold+settle on SQLite and PostgreSQL, one at a time and in batches."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from faregate.admin import ops
from faregate.app import make_store
from faregate.billing.store import Store
from faregate.billing.types import Settlement
from faregate.db import migrate
from faregate.db.urls import sqlalchemy_url

SETTLEMENT = Settlement(cost=7, prompt_tokens=250, completion_tokens=25)


def cpu() -> float:
    return time.process_time()


async def _rounds(store: Store, account: str, n: int, width: int) -> None:
    async def one() -> None:
        ticket = await store.hold(
            account_id=account, key_id=None, amount=100, model="m", request_id="r", ttl_ms=60_000
        )
        assert ticket is not None
        assert await store.settle(ticket, SETTLEMENT)

    for _ in range(n // width):
        await asyncio.gather(*(one() for _ in range(width)))


async def measure(url: str, n: int, width: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per hold+settle over `n` pairs, `width` at a time."""
    await migrate.upgrade(url)
    engine = create_async_engine(sqlalchemy_url(url))

    def rich(c: Connection) -> str:
        account = str(ops.create_account(c, "bench")["id"])
        ops.grant(c, account, 10**15, "bench")
        return account

    async with engine.begin() as conn:
        account = await conn.run_sync(rich)
    await engine.dispose()
    store = make_store(url)
    await store.start()
    try:
        await _rounds(store, account, min(n, 500), width)  # warm-up
        c0, w0 = cpu(), time.perf_counter()
        await _rounds(store, account, n, width)
        c1, w1 = cpu(), time.perf_counter()
    finally:
        await store.close()
    return (c1 - c0) / n * 1e6, (w1 - w0) / n * 1e6


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=4000, help="hold+settle pairs per setting")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test", help="'' skips")
    p.add_argument("--rounds", type=int, default=3, help="best of N")
    args = p.parse_args()
    pg_db = ""
    if args.pg:
        pg_db = f"faregate_ledger_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'CREATE DATABASE "{pg_db}"')
        await admin.close()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            urls: list[tuple[str, str]] = [("sqlite", f"sqlite:///{Path(tmp) / 'ledger.db'}")]
            if pg_db:
                urls.append(("postgresql", args.pg.rsplit("/", 1)[0] + "/" + pg_db))
            print("| backend | at a time | CPU µs per hold+settle | wall µs per hold+settle |")
            print("| --- | ---: | ---: | ---: |")
            for name, url in urls:
                for width in (1, 32):
                    best: Any = None
                    for _ in range(args.rounds):
                        got = await measure(url, args.n, width)
                        best = got if best is None or got[0] < best[0] else best
                    print(f"| {name} | {width} | {best[0]:.1f} | {best[1]:.1f} |", flush=True)
    finally:
        if pg_db:
            admin = await asyncpg.connect(args.pg)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)')
            await admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
