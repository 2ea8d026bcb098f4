"""What the client pages show, read for one account only: totals, the daily chart, keys with
their last use and spend, the request rows, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, func, select

from faregate.admin.ops import AdminError
from faregate.db.schema import usage_log
from faregate.usage import queries

CHART_DAYS = 30
CSV_COLUMNS = (
    "at",
    "request_id",
    "key_id",
    "model",
    "route",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_ms",
    "cached",
    "estimated",
)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dataclass(frozen=True, slots=True)
class Bar:
    day: str
    value: int
    x: float
    y: float
    height: float
    label: str


def bars(days: list[dt.date], values: dict[str, int], fmt: Callable[[int], str]) -> list[Bar]:
    """One bar per day, scaled to a 100-unit high, 300-unit wide chart."""
    top = max([values.get(d.isoformat(), 0) for d in days] + [1])
    width = 300 / len(days)
    out = []
    for i, day in enumerate(days):
        value = values.get(day.isoformat(), 0)
        height = 100 * value / top
        out.append(
            Bar(day.isoformat(), value, i * width, 100 - height, height, f"{day}: {fmt(value)}")
        )
    return out


def dashboard(conn: Connection, account_id: str) -> dict[str, Any]:
    """Spend today and this month, requests and spend per day over the chart's days, per model."""
    last = today()
    first = last - dt.timedelta(days=CHART_DAYS - 1)
    start = min(first, last.replace(day=1))
    by_day = queries.summary(conn, queries.UsageQuery("day", start, last, account_id=account_id))[
        "data"
    ]
    by_model = queries.summary(
        conn, queries.UsageQuery("model", first, last, account_id=account_id)
    )
    month = last.replace(day=1).isoformat()
    return {
        "today": sum(d["cost"] for d in by_day if d["day"] == last.isoformat()),
        "month": sum(d["cost"] for d in by_day if d["day"] >= month),
        "requests_today": sum(d["requests"] for d in by_day if d["day"] == last.isoformat()),
        "days": [first + dt.timedelta(days=i) for i in range(CHART_DAYS)],
        "spend": {d["day"]: d["cost"] for d in by_day},
        "requests": {d["day"]: d["requests"] for d in by_day},
        "models": by_model["data"],
        "totals": by_model["totals"],
    }


def key_stats(conn: Connection, account_id: str) -> dict[str, dict[str, int]]:
    """{key id: {last_used, spend (the chart's days)}} of the account's keys."""
    t = usage_log.c
    last_used = dict(
        conn.execute(
            select(t.key_id, func.max(t.at)).where(t.account_id == account_id).group_by(t.key_id)
        ).all()
    )
    last = today()
    spend = queries.summary(
        conn,
        queries.UsageQuery(
            "key", last - dt.timedelta(days=CHART_DAYS - 1), last, account_id=account_id
        ),
    )["data"]
    stats: dict[str, dict[str, int]] = {}
    for key_id, at in last_used.items():
        if key_id is not None:
            stats.setdefault(str(key_id), {"last_used": 0, "spend": 0})["last_used"] = int(at)
    for row in spend:
        if row["key_id"]:
            stats.setdefault(str(row["key_id"]), {"last_used": 0, "spend": 0})["spend"] = row[
                "cost"
            ]
    return stats


def csv_line(row: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # a spreadsheet must not read a model name as a formula
    return value


async def csv_rows(
    run: Callable[[Callable[[Connection], dict[str, Any]]], Any], q: queries.RequestsQuery
) -> AsyncIterator[bytes]:
    """The request rows of `q` as CSV, a page at a time (never the whole export at once)."""
    yield (",".join(CSV_COLUMNS) + "\r\n").encode()
    cursor = None
    while True:
        page_q = queries.RequestsQuery(
            q.first, q.last, q.account_id, q.key_id, q.model, queries.MAX_ROWS, cursor
        )
        page = await run(lambda c, pq=page_q: queries.requests(c, pq))  # type: ignore[misc]
        yield "".join(csv_line(r) for r in page["data"]).encode()
        cursor = page["next_cursor"]
        if cursor is None:
            return


def usd_amount(raw: str, rate: int, field: str) -> int | None:
    """A dollar amount typed in a form as micro-credits; blank is None."""
    raw = raw.strip().lstrip("$")
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise AdminError(f"{field} must be an amount in dollars, like 5 or 0.25", 422) from None
    if not value.is_finite() or value < 0 or value > Decimal(10) ** 9:
        raise AdminError(f"{field} must be an amount in dollars from 0 to 10^9", 422)
    return int(value * rate)


def day_end_ms(raw: str, field: str) -> int | None:
    """The end of a YYYY-MM-DD day (UTC) in epoch milliseconds; blank is None."""
    if not raw.strip():
        return None
    try:
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise AdminError(f"{field} must be a date as YYYY-MM-DD", 422) from None
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    return int(end.timestamp() * 1000)
