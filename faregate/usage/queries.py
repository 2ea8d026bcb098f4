"""Usage reports: totals per day, model or key over a date range, and the raw request rows.

A report reads `usage_daily` (every row up to the rollup's watermark: whole past days and
the part of today already rolled up) plus the `usage_log` rows past the watermark (the last
seconds to minutes, found by primary key), in ONE statement so that a rollup committing
meanwhile is seen either entirely or not at all. Its cost is thus bounded by the number of
(day, account, key, model) groups in the range, not by the number of requests. Days are UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, select, text, tuple_

from faregate.db.schema import api_keys, usage_log
from faregate.usage.rollup import DAY_MS, WATERMARK, day_sql, day_start_ms, watermark

GroupBy = Literal["day", "model", "key"]
GROUPS: tuple[GroupBy, ...] = ("day", "model", "key")
TOTALS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost")
MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Totals over the UTC days `first`..`last` (inclusive), for one account and/or one key
    (None: every one), grouped by day, model or key."""

    group_by: GroupBy
    first: dt.date
    last: dt.date
    account_id: str | None = None
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class RequestsQuery:
    """Raw rows, newest first, `limit` per page; `cursor` is the previous page's `next_cursor`."""

    first: dt.date
    last: dt.date
    account_id: str | None = None
    key_id: str | None = None
    model: str | None = None
    limit: int = 100
    cursor: str | None = None


def _filters(q: UsageQuery) -> tuple[str, dict[str, Any]]:
    sql, params = "", {}
    if q.account_id is not None:
        sql += " AND account_id = :account_id"
        params["account_id"] = q.account_id
    if q.key_id is not None:
        sql += " AND key_id = :key_id"
        params["key_id"] = q.key_id
    return sql, params


def summary(conn: Connection, q: UsageQuery) -> dict[str, Any]:
    """{"data": [{<group>: ..., requests, errors, prompt_tokens, completion_tokens, cost}],
    "totals": {...}}, groups in ascending order."""
    daily_group = {"day": "day", "model": "model", "key": "key_id"}[q.group_by]
    tail_group = {
        "day": day_sql(conn),
        "model": "COALESCE(SUBSTR(model, 1, 200), '')",
        "key": "COALESCE(key_id, '')",
    }[q.group_by]
    where, params = _filters(q)
    params |= {
        "first": q.first.isoformat(),
        "last": q.last.isoformat(),
        "start": day_start_ms(q.first),
        "end": day_start_ms(q.last) + DAY_MS,
        "n": WATERMARK,
    }
    # The tail (rows past the watermark) is taken by primary key alone, then filtered: with
    # the watermark written as a literal, both planners see how few rows that is, rather than
    # walking an account's or a key's whole range in its (account, at) or (key, at) index.
    # The subquery keeps the statement consistent if a rollup commits in between.
    sums = ", ".join(f"SUM({c})" for c in TOTALS)
    sql = (
        "WITH tail AS MATERIALIZED (SELECT at, key_id, account_id, model, status,"
        " prompt_tokens, completion_tokens, cost FROM usage_log"
        f" WHERE id > {int(watermark(conn))} AND id > COALESCE((SELECT value"
        " FROM usage_rollup_state WHERE name = :n), 0))"
        f" SELECT g, {sums} FROM ("
        f" SELECT {daily_group} AS g, {', '.join(TOTALS)} FROM usage_daily"
        f" WHERE day >= :first AND day <= :last{where}"
        " UNION ALL"
        f" SELECT {tail_group} AS g, 1, CASE WHEN status >= 400 THEN 1 ELSE 0 END,"
        " prompt_tokens, completion_tokens, cost FROM tail"
        f" WHERE at >= :start AND at < :end{where}"
        ") u GROUP BY g ORDER BY g"
    )
    data = []
    totals = dict.fromkeys(TOTALS, 0)
    for row in conn.execute(text(sql), params):
        # A request refused before its model was known has no model: shown as null.
        item: dict[str, Any] = {q.group_by if q.group_by != "key" else "key_id": row[0] or None}
        for name, value in zip(TOTALS, row[1:], strict=True):
            item[name] = int(value or 0)
            totals[name] += item[name]
        data.append(item)
    if q.group_by == "key" and data:
        names = dict(
            conn.execute(
                select(api_keys.c.id, api_keys.c.name).where(
                    api_keys.c.id.in_([d["key_id"] for d in data])
                )
            ).all()
        )
        for item in data:
            item["key_name"] = names.get(item["key_id"])
    return {"data": data, "totals": totals}


def _cursor(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    at, _, row_id = value.partition("_")
    if not (at.isdigit() and row_id.isdigit()):
        raise ValueError("cursor is not one this API returned")
    return int(at), int(row_id)


def requests(conn: Connection, q: RequestsQuery) -> dict[str, Any]:
    """{"data": [usage_log rows, newest first], "next_cursor": str | None}. A row's `units`
    is {meter: count} of what it was billed for beyond tokens. A bad cursor raises ValueError."""
    limit = max(1, min(q.limit, MAX_ROWS))
    t = usage_log.c
    stmt = (
        select(usage_log)
        .where(t.at >= day_start_ms(q.first), t.at < day_start_ms(q.last) + DAY_MS)
        .order_by(t.at.desc(), t.id.desc())
        .limit(limit + 1)
    )
    if q.account_id is not None:
        stmt = stmt.where(t.account_id == q.account_id)
    if q.key_id is not None:
        stmt = stmt.where(t.key_id == q.key_id)
    if q.model is not None:
        stmt = stmt.where(t.model == q.model)
    after = _cursor(q.cursor)
    if after is not None:
        stmt = stmt.where(tuple_(t.at, t.id) < tuple_(*after))
    rows = [{str(k): v for k, v in r.items()} for r in conn.execute(stmt).mappings()]
    for row in rows:
        row["cached"], row["estimated"] = bool(row["cached"]), bool(row["estimated"])
        row["units"] = orjson.loads(row["units"]) if row["units"] else {}
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return {
        "data": rows,
        "next_cursor": f"{last['at']}_{last['id']}" if more and last else None,
    }
