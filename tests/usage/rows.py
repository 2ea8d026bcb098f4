"""Synthetic usage_log rows for the usage tests (imported as `usage.rows`)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from faregate.db.engine import AdminDB
from faregate.db.schema import usage_log
from faregate.usage import rollup

DAY = rollup.DAY_MS
TODAY = dt.datetime.now(dt.UTC).date()
TOTALS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost")


def usage_rows(
    n: int, days: int = 5, seed: int = 7, at_day: dt.date = TODAY
) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    start = rollup.day_start_ms(at_day - dt.timedelta(days=days - 1))
    rows = []
    for i in range(n):
        acct = rnd.choice(["acct_a", "acct_b"])
        rows.append(
            {
                "at": start + rnd.randrange(days * DAY),
                "request_id": f"req_{seed}_{i}",
                "key_id": f"key_{acct[-1]}{rnd.randrange(2)}",
                "account_id": acct,
                "route": "chat",
                "model": rnd.choice(["m1", "m2", None]),
                "deployment": "d",
                "prompt_tokens": rnd.randrange(100),
                "completion_tokens": rnd.randrange(50),
                "cost": rnd.randrange(10_000),
                "latency_ms": 5,
                "status": rnd.choice([200, 200, 200, 429, 502]),
                "cached": False,
                "estimated": False,
            }
        )
    return rows


async def insert(db: AdminDB, rows: list[dict[str, Any]]) -> None:
    await db.run(lambda c: c.execute(usage_log.insert(), rows))
