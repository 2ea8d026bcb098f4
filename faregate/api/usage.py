"""Client routes: a key's own usage, and redeeming a code for the key's account."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from faregate.admin import audit, codes
from faregate.admin.ops import AdminError
from faregate.api.common import authenticate, json_body
from faregate.billing.pricing import to_usd
from faregate.billing.types import KeyRecord
from faregate.db.engine import AdminDB
from faregate.errors import (
    BadRequest,
    Conflict,
    FaregateError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.pipeline.services import Services
from faregate.usage import queries

MAX_DAYS = 400
DEFAULT_DAYS = 30


def _date(query: Mapping[str, str], name: str, default: dt.date) -> dt.date:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(
            f"'{name}' must be a date as YYYY-MM-DD, not {raw!r}.", code="invalid_date", param=name
        ) from None


def date_range(query: Mapping[str, str]) -> tuple[dt.date, dt.date]:
    """`from`..`to` (UTC days, inclusive); `to` defaults to today, `from` to 29 days before."""
    today = dt.datetime.now(dt.UTC).date()
    last = _date(query, "to", today)
    first = _date(query, "from", last - dt.timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise BadRequest("'from' is after 'to'.", code="invalid_date", param="from")
    if (last - first).days >= MAX_DAYS:
        raise BadRequest(
            f"A usage query spans at most {MAX_DAYS} days.", code="range_too_long", param="from"
        )
    return first, last


def usage_query(
    query: Mapping[str, str], account_id: str | None, key_id: str | None
) -> queries.UsageQuery:
    group_by = query.get("group_by", "day")
    if group_by not in queries.GROUPS:
        raise BadRequest(
            f"'group_by' must be one of {', '.join(queries.GROUPS)}.",
            code="invalid_group_by",
            param="group_by",
        )
    first, last = date_range(query)
    return queries.UsageQuery(
        group_by=group_by,
        first=first,
        last=last,
        account_id=account_id,
        key_id=key_id,
    )


def limit_of(query: Mapping[str, str], default: int = 100, most: int = 1000) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise BadRequest(
            f"'limit' must be a number from 1 to {most}.", code="invalid_limit", param="limit"
        )
    return int(raw)


def report(q: queries.UsageQuery, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "usage",
        "group_by": q.group_by,
        "from": q.first.isoformat(),
        "to": q.last.isoformat(),
        "account_id": q.account_id,
        "key_id": q.key_id,
        "unit": "micro_credits",
        **result,
    }


def refusal(exc: AdminError) -> FaregateError:
    """A refused redemption as the client sees it."""
    code, param = exc.code, exc.param
    if exc.status == 404:
        return NotFound(exc.message, code=code, param=param)
    if exc.status == 409:
        return Conflict(exc.message, code=code, param=param)
    return ValidationFailed(exc.message, code=code, param=param)


class ClientUsage:
    def __init__(self, svc: Services, db: AdminDB) -> None:
        self.svc = svc
        self.db = db

    async def _caller(self, req: Request) -> KeyRecord:
        """The caller's key, held to its IP, origin and time restrictions like metered routes."""
        return await authenticate(self.svc, req)

    async def usage(self, req: Request) -> Response:
        key = await self._caller(req)
        asked_key = req.query.get("key_id")
        if (asked_key is not None and asked_key != key.id) or "account_id" in req.query:
            raise PermissionDenied(
                "A key can read its own usage only.", code="usage_not_allowed", param="key_id"
            )
        q = usage_query(req.query, None, key.id)
        result = await self.db.run(lambda c: queries.summary(c, q))
        return Response.json({**report(q, result), "account_id": key.account_id})

    async def redeem(self, req: Request) -> Response:
        key = await self._caller(req)
        body = await json_body(self.svc, req)
        code = body.get("code")
        if not isinstance(code, str) or not code.strip():
            raise ValidationFailed("'code' must be the redemption code.", param="code")
        act = audit.audited(
            lambda c: codes.redeem(c, self.svc.hasher, code, key.account_id),
            f"key:{key.id}",
            "code.redeem",
            lambda r: str(r["code_id"]),
            lambda r: {"account_id": r["account_id"], "amount": r["amount"]},
        )
        try:
            result = await self.db.run(act)
        except AdminError as exc:
            raise refusal(exc) from None
        rate = self.svc.config.billing.micro_credits_per_usd
        return Response.json(
            {
                "object": "redemption",
                **result,
                "unit": "micro_credits",
                "balance_usd": to_usd(int(result["balance"]), rate),
            }
        )
