"""Operator actions on guards: the refusals they made, reviewed as false positives or
confirmed."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, select

from faregate.admin.ops import AdminError
from faregate.billing.store import now_ms
from faregate.db.schema import guard_reviews, usage_log

VERDICTS = ("false_positive", "confirmed")


def refusals(
    conn: Connection,
    *,
    account_id: str | None,
    detector: str | None,
    limit: int,
    before: int | None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Requests a guard refused, newest first, with their review if any; (rows, next cursor)."""
    q = (
        select(
            usage_log.c.id,
            usage_log.c.at,
            usage_log.c.request_id,
            usage_log.c.account_id,
            usage_log.c.key_id,
            usage_log.c.route,
            usage_log.c.model,
            usage_log.c.status,
            usage_log.c.guard,
            guard_reviews.c.verdict,
            guard_reviews.c.note,
            guard_reviews.c.actor,
            guard_reviews.c.created_at,
        )
        .select_from(
            usage_log.outerjoin(guard_reviews, guard_reviews.c.request_id == usage_log.c.request_id)
        )
        .where(usage_log.c.guard.is_not(None))
        .order_by(usage_log.c.id.desc())
        .limit(limit + 1)
    )
    if account_id is not None:
        q = q.where(usage_log.c.account_id == account_id)
    if detector is not None:  # the column holds compact JSON written by the guard
        q = q.where(usage_log.c.guard.contains(orjson.dumps({"detector": detector}).decode()[1:-1]))
    if before is not None:
        q = q.where(usage_log.c.id < before)
    rows = list(conn.execute(q))
    out: list[dict[str, Any]] = []
    for row in rows[:limit]:
        guard = orjson.loads(row.guard)
        review = (
            {"verdict": row.verdict, "note": row.note, "actor": row.actor, "at": row.created_at}
            if row.verdict is not None
            else None
        )
        out.append(
            {
                "request_id": row.request_id,
                "at": row.at,
                "account_id": row.account_id,
                "key_id": row.key_id,
                "route": row.route,
                "model": row.model,
                "status": row.status,
                **guard,
                "review": review,
            }
        )
    more = int(rows[limit - 1].id) if len(rows) > limit else None
    return out, more


def review(
    conn: Connection, request_id: str, verdict: str, note: str | None, actor: str
) -> dict[str, Any]:
    """Mark a refusal as a false positive or confirm it (again replaces the earlier review)."""
    if verdict not in VERDICTS:
        raise AdminError(f"verdict: one of {', '.join(VERDICTS)}")
    refused = conn.execute(
        select(usage_log.c.id).where(
            usage_log.c.request_id == request_id, usage_log.c.guard.is_not(None)
        )
    ).first()
    if refused is None:
        raise AdminError(f"no refused request {request_id!r} in the usage log", 404)
    conn.execute(guard_reviews.delete().where(guard_reviews.c.request_id == request_id))
    row = {
        "request_id": request_id,
        "verdict": verdict,
        "note": note,
        "actor": actor,
        "created_at": now_ms(),
    }
    conn.execute(guard_reviews.insert().values(**row))
    return row
