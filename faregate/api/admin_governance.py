"""Admin routes of governance: users and members, redemption codes, the audit log, usage.

Every action that changes something writes its audit row in the transaction of the action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from sqlalchemy import Connection

from faregate.admin import audit, codes, users
from faregate.admin.ops import AdminError
from faregate.api.admin import AdminAPI, admin_route
from faregate.api.usage import date_range, limit_of, refusal, report, usage_query
from faregate.billing.bounds import EpochMs, PositiveAmount
from faregate.errors import BadRequest
from faregate.http.request import Request
from faregate.http.router import Route
from faregate.usage import queries, rollup


class _NewUser(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    name: str = ""


class _Member(msgspec.Struct, forbid_unknown_fields=True):
    user_id: str
    role: str = "member"


class _KeyUser(msgspec.Struct, forbid_unknown_fields=True):
    user_id: str | None


class _NewCode(msgspec.Struct, forbid_unknown_fields=True):
    amount: PositiveAmount
    max_uses: Annotated[int, msgspec.Meta(ge=1, le=codes.MAX_USES)] = 1
    expires_at: EpochMs | None = None


class _Redeem(msgspec.Struct, forbid_unknown_fields=True):
    code: str


def actor_of(admin: AdminAPI, req: Request) -> str:
    """Who is acting, for the audit log (see `audit.admin_actor`); call after `_authorize`."""
    return audit.admin_actor(req.headers.get("authorization", ""), admin.env_admin_key)


def _int(req: Request, name: str) -> int | None:
    raw = req.query.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequest(f"'{name}' must be a whole number.", param=name)
    return int(raw)


class Governance:
    def __init__(self, admin: AdminAPI) -> None:
        self.admin = admin

    # -- users and members -----------------------------------------------------

    async def create_user(self, req: Request) -> dict[str, Any]:
        body = await self.admin._body(req, _NewUser)
        return await self.admin.run(
            audit.audited(
                lambda c: users.create_user(c, body.email, body.name),
                actor_of(self.admin, req),
                "user.create",
                lambda u: str(u["id"]),
                lambda u: {"email": u["email"]},
            )
        )

    async def list_users(self, req: Request) -> dict[str, Any]:
        email, limit, cursor = req.query.get("email"), limit_of(req.query), req.query.get("cursor")
        rows, more = await self.admin.run(
            lambda c: users.list_users(c, email=email, limit=limit, cursor=cursor)
        )
        return {"object": "list", "data": rows, "next_cursor": more}

    async def get_user(self, req: Request) -> dict[str, Any]:
        user_id = req.params["user_id"]
        return await self.admin.run(lambda c: users.get_user(c, user_id))

    async def user_accounts(self, req: Request) -> dict[str, Any]:
        user_id = req.params["user_id"]
        rows = await self.admin.run(lambda c: users.user_accounts(c, user_id))
        return {"object": "list", "data": rows}

    async def disable_user(self, req: Request) -> dict[str, Any]:
        user_id = req.params["user_id"]
        user, hashes = await self.admin.run(
            audit.audited(
                lambda c: users.disable_user(c, user_id),
                actor_of(self.admin, req),
                "user.disable",
                user_id,
                lambda r: {"keys_revoked": len(r[1])},
            )
        )
        for key_hash in hashes:
            self.admin.svc.keys.forget(key_hash)
        return {**user, "keys_revoked": len(hashes)}

    async def list_members(self, req: Request) -> dict[str, Any]:
        account_id = req.params["account_id"]
        rows = await self.admin.run(lambda c: users.list_members(c, account_id))
        return {"object": "list", "data": rows}

    async def add_member(self, req: Request) -> dict[str, Any]:
        body = await self.admin._body(req, _Member)
        account_id = req.params["account_id"]
        return await self.admin.run(
            audit.audited(
                lambda c: users.add_member(c, account_id, body.user_id, body.role),
                actor_of(self.admin, req),
                "member.add",
                account_id,
                {"user_id": body.user_id, "role": body.role},
            )
        )

    async def remove_member(self, req: Request) -> dict[str, Any]:
        account_id, user_id = req.params["account_id"], req.params["user_id"]
        row = await self.admin.run(
            audit.audited(
                lambda c: users.remove_member(c, account_id, user_id),
                actor_of(self.admin, req),
                "member.remove",
                account_id,
                {"user_id": user_id},
            )
        )
        return {**row, "removed": True}

    async def set_key_user(self, req: Request) -> dict[str, Any]:
        body = await self.admin._body(req, _KeyUser)
        key_id = req.params["key_id"]
        return await self.admin.run(
            audit.audited(
                lambda c: users.set_key_user(c, key_id, body.user_id),
                actor_of(self.admin, req),
                "key.set_user",
                key_id,
                {"user_id": body.user_id},
            )
        )

    # -- redemption codes ------------------------------------------------------

    async def create_code(self, req: Request) -> dict[str, Any]:
        body = await self.admin._body(req, _NewCode)
        record, code = await self.admin.run(
            audit.audited(
                lambda c: codes.create_code(
                    c,
                    self.admin.svc.hasher,
                    body.amount,
                    max_uses=body.max_uses,
                    expires_at=body.expires_at,
                ),
                actor_of(self.admin, req),
                "code.create",
                lambda r: str(r[0]["id"]),
                {"amount": body.amount, "max_uses": body.max_uses, "expires_at": body.expires_at},
            )
        )
        return {**record, "code": code}

    async def list_codes(self, req: Request) -> dict[str, Any]:
        limit, cursor = limit_of(req.query), req.query.get("cursor")
        rows, more = await self.admin.run(lambda c: codes.list_codes(c, limit=limit, cursor=cursor))
        return {"object": "list", "data": rows, "next_cursor": more}

    async def get_code(self, req: Request) -> dict[str, Any]:
        code_id = req.params["code_id"]
        return await self.admin.run(lambda c: codes.get_code(c, code_id))

    async def revoke_code(self, req: Request) -> dict[str, Any]:
        code_id = req.params["code_id"]
        return await self.admin.run(
            audit.audited(
                lambda c: codes.revoke_code(c, code_id),
                actor_of(self.admin, req),
                "code.revoke",
                code_id,
            )
        )

    async def redeem(self, req: Request) -> dict[str, Any]:
        body = await self.admin._body(req, _Redeem)
        account_id = req.params["account_id"]
        act = audit.audited(
            lambda c: codes.redeem(c, self.admin.svc.hasher, body.code, account_id),
            actor_of(self.admin, req),
            "code.redeem",
            lambda r: str(r["code_id"]),
            lambda r: {"account_id": account_id, "amount": r["amount"]},
        )
        try:
            return await self.admin.db.run(act)
        except AdminError as exc:
            raise refusal(exc) from None

    # -- audit log and usage ---------------------------------------------------

    async def audit_log(self, req: Request) -> dict[str, Any]:
        q = req.query
        filters = audit.AuditFilters(
            actor=q.get("actor"),
            action=q.get("action"),
            target=q.get("target"),
            since=_int(req, "since"),
            until=_int(req, "until"),
        )
        limit, cursor = limit_of(q), _int(req, "cursor")
        rows, more = await self.admin.run(lambda c: audit.list(c, filters, limit, cursor))
        return {"object": "list", "data": rows, "next_cursor": more}

    async def usage(self, req: Request) -> dict[str, Any]:
        q = usage_query(req.query, req.query.get("account_id"), req.query.get("key_id"))
        return report(q, await self.admin.run(lambda c: queries.summary(c, q)))

    async def usage_requests(self, req: Request) -> dict[str, Any]:
        first, last = date_range(req.query)
        rq = queries.RequestsQuery(
            first=first,
            last=last,
            account_id=req.query.get("account_id"),
            key_id=req.query.get("key_id"),
            model=req.query.get("model"),
            limit=limit_of(req.query),
            cursor=req.query.get("cursor"),
        )
        try:
            page = await self.admin.run(lambda c: queries.requests(c, rq))
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_cursor", param="cursor") from None
        return {"object": "list", **page}

    async def usage_rollup(self, req: Request) -> dict[str, Any]:
        """Fold every committed usage row into usage_daily now (the background task does it
        every `rollup_interval_seconds`), in chunks; the first carries the audit row."""
        upto = await self.admin.run(rollup.safe_max_id)
        actor, total, chunk = actor_of(self.admin, req), 0, rollup.chunk_rows(self.admin.db)
        while True:
            step: Callable[[Connection], int] = lambda c: rollup.rollup(c, upto, chunk)  # noqa: E731
            if total == 0:
                step = audit.audited(step, actor, "usage.rollup", None, {"upto_id": upto})
            moved = await self.admin.run(step)
            total += moved
            if moved < chunk:
                break
        return {"rolled_up": total, "watermark": await self.admin.run(rollup.watermark)}


def routes(admin: AdminAPI, prefix: str = "/admin/v1") -> list[Route]:
    """Its routes, for the route table (`faregate.api.routes`)."""
    g = Governance(admin)

    def add(
        path: str, method: str, fn: Callable[[Request], Awaitable[Any]], status: int = 200
    ) -> Route:
        return admin_route(f"{prefix}{path}", method, admin._route(fn, status))

    return [
        add("/users", "POST", g.create_user, 201),
        add("/users", "GET", g.list_users),
        add("/users/{user_id}", "GET", g.get_user),
        add("/users/{user_id}/accounts", "GET", g.user_accounts),
        add("/users/{user_id}/disable", "POST", g.disable_user),
        add("/accounts/{account_id}/members", "GET", g.list_members),
        add("/accounts/{account_id}/members", "POST", g.add_member, 201),
        add("/accounts/{account_id}/members/{user_id}", "DELETE", g.remove_member),
        add("/accounts/{account_id}/redeem", "POST", g.redeem),
        add("/keys/{key_id}/user", "POST", g.set_key_user),
        add("/codes", "POST", g.create_code, 201),
        add("/codes", "GET", g.list_codes),
        add("/codes/{code_id}", "GET", g.get_code),
        add("/codes/{code_id}/revoke", "POST", g.revoke_code),
        add("/audit", "GET", g.audit_log),
        add("/usage", "GET", g.usage),
        add("/usage/requests", "GET", g.usage_requests),
        add("/usage/rollup", "POST", g.usage_rollup),
    ]
