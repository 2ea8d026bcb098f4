"""Usage reports on SQLite and PostgreSQL: the same answer before, during and after the
rollup, filtered by account and key; raw rows paged by cursor."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import Connection, select
from usage.rows import TODAY, insert, usage_rows

from faregate.db.engine import AdminDB
from faregate.db.schema import usage_log
from faregate.usage import queries, rollup
from faregate.usage.queries import RequestsQuery, UsageQuery


def by_hand(c: Connection, q: UsageQuery) -> tuple[list[dict[str, Any]], dict[str, int]]:
    groups: dict[str, list[int]] = defaultdict(lambda: [0] * 5)
    for r in c.execute(select(usage_log)).mappings():
        day = dt.datetime.fromtimestamp(r["at"] / 1000, dt.UTC).date()
        if not q.first <= day <= q.last:
            continue
        if q.account_id and r["account_id"] != q.account_id:
            continue
        if q.key_id and r["key_id"] != q.key_id:
            continue
        g = {"day": day.isoformat(), "model": r["model"] or "", "key": r["key_id"]}[q.group_by]
        t = groups[g]
        for i, v in enumerate(
            (1, r["status"] >= 400, r["prompt_tokens"], r["completion_tokens"], r["cost"])
        ):
            t[i] += int(v)
    name = "key_id" if q.group_by == "key" else q.group_by
    data = [
        {name: g or None, **dict(zip(queries.TOTALS, t, strict=True))}
        for g, t in sorted(groups.items())
    ]
    totals = {k: sum(d[k] for d in data) for k in queries.TOTALS}
    return data, totals


QUERIES = [
    UsageQuery("day", TODAY - dt.timedelta(days=6), TODAY),
    UsageQuery("day", TODAY - dt.timedelta(days=2), TODAY - dt.timedelta(days=1), "acct_a"),
    UsageQuery("model", TODAY - dt.timedelta(days=29), TODAY, "acct_b"),
    UsageQuery("key", TODAY - dt.timedelta(days=29), TODAY, key_id="key_a1"),
    UsageQuery("model", TODAY, TODAY, key_id="key_b0"),
    UsageQuery("key", TODAY - dt.timedelta(days=3), TODAY, "acct_a", "key_b0"),  # nothing
]


async def check(db: AdminDB) -> None:
    for q in QUERIES:
        got = await db.run(lambda c, q=q: queries.summary(c, q))
        data, totals = await db.run(lambda c, q=q: by_hand(c, q))
        for item in got["data"]:
            item.pop("key_name", None)
        assert got["data"] == data, q
        assert got["totals"] == totals, q


async def test_reports_do_not_depend_on_the_rollup(db: AdminDB) -> None:
    await insert(db, usage_rows(800, days=10))
    await check(db)  # all from usage_log
    await db.run(lambda c: rollup.rollup(c, max_rows=300))
    await check(db)  # part rolled up
    await db.run(rollup.rollup)
    await check(db)  # all rolled up
    await insert(db, usage_rows(100, days=2, seed=11))
    await check(db)  # a tail again


async def test_key_groups_carry_the_key_name(db: AdminDB) -> None:
    from faregate.admin import ops
    from faregate.auth.keys import KeyHasher
    from faregate.db.schema import api_keys

    def make(c: Connection) -> str:
        acct = ops.create_account(c, "a")["id"]
        key, _ = ops.create_key(c, KeyHasher(b"s"), acct, "laptop")
        c.execute(
            usage_log.insert(),
            [{**r, "key_id": key["id"], "account_id": acct} for r in usage_rows(5, days=1)],
        )
        return str(c.execute(select(api_keys.c.id)).scalar_one())

    key_id = await db.run(make)
    got = await db.run(lambda c: queries.summary(c, UsageQuery("key", TODAY, TODAY)))
    assert [(d["key_id"], d["key_name"], d["requests"]) for d in got["data"]] == [
        (key_id, "laptop", 5)
    ]


async def test_request_rows_page_by_cursor(db: AdminDB) -> None:
    rows = usage_rows(230, days=3)
    for r in rows[:20]:
        r["at"] = rows[0]["at"]  # ties on `at` are ordered by id
    await insert(db, rows)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await db.run(
            lambda c, cur=cursor: queries.requests(
                c,
                RequestsQuery(TODAY - dt.timedelta(days=2), TODAY, "acct_a", limit=40, cursor=cur),
            )
        )
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    want = sorted(
        (
            r
            for r in await db.run(
                lambda c: [dict(x) for x in c.execute(select(usage_log)).mappings()]
            )
            if r["account_id"] == "acct_a"
        ),
        key=lambda r: (r["at"], r["id"]),
        reverse=True,
    )
    assert [r["id"] for r in seen] == [r["id"] for r in want]
    assert all(isinstance(r["cached"], bool) for r in seen)
    one = await db.run(
        lambda c: queries.requests(c, RequestsQuery(TODAY, TODAY, key_id="key_a0", model="m1"))
    )
    assert all(r["key_id"] == "key_a0" and r["model"] == "m1" for r in one["data"])
    with pytest.raises(ValueError, match="cursor"):
        await db.run(lambda c: queries.requests(c, RequestsQuery(TODAY, TODAY, cursor="x")))


async def test_request_rows_show_their_units(db: AdminDB) -> None:
    rows = usage_rows(2, days=1)
    rows[0] |= {"route": "images", "units": '{"images:1024x1024":2}', "at": rows[1]["at"] + 1}
    rows[1]["units"] = None
    await insert(db, rows)
    page = await db.run(lambda c: queries.requests(c, RequestsQuery(TODAY, TODAY)))
    assert [r["units"] for r in page["data"]] == [{"images:1024x1024": 2}, {}]
