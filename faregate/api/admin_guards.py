"""`/admin/v1/guards`: the requests guards refused, and the operator's review of each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from faregate.admin import audit
from faregate.admin import guards as guard_ops
from faregate.api.admin import AdminAPI, admin_route
from faregate.api.admin_governance import _int
from faregate.api.usage import limit_of
from faregate.http.request import Request
from faregate.http.router import Route


class Review(msgspec.Struct, forbid_unknown_fields=True):
    verdict: str
    note: str | None = None


class GuardsAdmin:
    def __init__(self, admin: AdminAPI) -> None:
        self.admin = admin

    async def refusals(self, req: Request) -> dict[str, Any]:
        q = req.query
        limit, before = limit_of(q), _int(req, "cursor")
        rows, more = await self.admin.run(
            lambda c: guard_ops.refusals(
                c,
                account_id=q.get("account_id"),
                detector=q.get("detector"),
                limit=limit,
                before=before,
            )
        )
        return {"object": "list", "data": rows, "next_cursor": more}

    async def review(self, req: Request) -> dict[str, Any]:
        body = await self.admin._body(req, Review)
        request_id = req.params["request_id"]
        actor = audit.admin_actor(req.headers.get("authorization", ""), self.admin.env_admin_key)
        return await self.admin._audited(
            req,
            lambda c: guard_ops.review(c, request_id, body.verdict, body.note, actor),
            "guard.review",
            request_id,
            {"verdict": body.verdict},
        )


def routes(admin: AdminAPI, prefix: str = "/admin/v1") -> list[Route]:
    """Its routes, for the route table (`faregate.api.routes`)."""
    g = GuardsAdmin(admin)

    def add(path: str, method: str, fn: Callable[[Request], Awaitable[Any]]) -> Route:
        return admin_route(f"{prefix}{path}", method, admin._route(fn))

    return [
        add("/guards/refusals", "GET", g.refusals),
        add("/guards/refusals/{request_id}/review", "POST", g.review),
    ]
