"""The admin API under `/admin/v1`: accounts, keys, credits and the ledger (not client-facing)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Connection

from faregate.admin import audit, ops
from faregate.api.common import caller_address, json_body
from faregate.auth.throttle import Throttle
from faregate.billing.bounds import Amount, EpochMs, SignedAmount
from faregate.config import ConfigError
from faregate.db.engine import AdminDB
from faregate.errors import (
    BadRequest,
    FaregateError,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.http.router import Handler, Route, Visibility
from faregate.limits.config import LimitsConfigError, check_overrides
from faregate.pipeline.services import Services

T = TypeVar("T")
S = TypeVar("S")


class _NewAccount(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    credits: Amount = 0


class _Grant(msgspec.Struct, forbid_unknown_fields=True):
    amount: SignedAmount
    note: str | None = None


class _NewKey(msgspec.Struct, forbid_unknown_fields=True):
    name: str = "default"
    models: list[str] | None = None
    expires_at: EpochMs | None = None


_ACCOUNT_FIELDS = frozenset({"plan", "limits", "spend_limit", "spend_period", "restrictions"})
_KEY_FIELDS = frozenset(
    {
        "name",
        "models",
        "limits",
        "restrictions",
        "guards",
        "spend_limit",
        "spend_period",
        "expires_at",
    }
)


class AdminAPI:
    def __init__(
        self,
        svc: Services,
        db: AdminDB,
        env_admin_key: str | None,
        reload: Callable[[], str],
        throttle: Throttle | None = None,
    ) -> None:
        self.svc = svc
        self.db = db
        self.env_admin_key = env_admin_key
        self._reload = reload
        self.throttle = throttle if throttle is not None else Throttle()

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """One operator action, as one transaction."""
        try:
            return await self.db.run(fn)
        except ops.AdminError as exc:
            err = (
                NotFound(exc.message)
                if exc.status == 404
                else FaregateError(exc.message, param=exc.param)
            )
            if exc.status != 404:
                err.status = exc.status
                err.type = "invalid_request_error"
                err.code = "admin_action_refused"
            raise err from None

    async def _audited(
        self,
        req: Request,
        fn: Callable[[Connection], T],
        action: str,
        target: str | Callable[[T], str | None] | None,
        detail: dict[str, Any] | None = None,
    ) -> T:
        """`fn` and its audit row, in one transaction."""
        actor = audit.admin_actor(req.headers.get("authorization", ""), self.env_admin_key)
        return await self.run(audit.audited(fn, actor, action, target, detail))

    async def _authorize(self, req: Request) -> None:
        """A valid admin key, or 401; an address with too many failures gets 429 before its
        key is even checked (auth/throttle.py), and each failure is audited."""
        address = caller_address(self.svc, req)
        self._not_throttled(address)
        auth = req.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token:
            raise Unauthorized("The admin API needs 'Authorization: Bearer ADMIN_KEY'.")
        if self.env_admin_key and hmac.compare_digest(token, self.env_admin_key):
            self.throttle.succeeded(address)
            return
        digest = self.svc.hasher(token)
        async with self.throttle.one_at_a_time(address):
            self._not_throttled(address)  # an attempt before this one may have failed
            if await self.run(lambda c: ops.is_admin(c, digest)):
                self.throttle.succeeded(address)
                return
            failure = self.throttle.failed(address)
        action = "admin_auth.blocked" if failure.blocked else "admin_auth.failed"
        detail = {
            "address": address,
            "failures": failure.failures,
            "retry_after": failure.wait_seconds,
        }
        await self.run(lambda c: audit.record(c, f"addr:{address}", action, None, detail))
        raise Unauthorized("Invalid admin key.")

    def _not_throttled(self, address: str) -> None:
        wait = self.throttle.wait(address)
        if wait is not None:
            raise RateLimited(
                f"Too many failed admin authentications from this address; retry in {wait} s.",
                code="admin_auth_throttled",
                retry_after=wait,
            )

    async def _body(self, req: Request, schema: type[S]) -> S:
        data = await json_body(self.svc, req)
        try:
            return msgspec.convert(data, schema)
        except msgspec.ValidationError as exc:
            text = str(exc)
            param = text.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in text else None
            raise ValidationFailed(f"Invalid request: {text}", param=param) from None

    def _route(
        self, fn: Callable[[Request], Awaitable[Any]], status: int = 200
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(req: Request) -> Response:
            await self._authorize(req)
            return Response.json(await fn(req), status)

        return handle

    # -- actions -----------------------------------------------------------------

    async def create_account(self, req: Request) -> dict[str, Any]:
        body = await self._body(req, _NewAccount)

        def act(conn: Connection) -> dict[str, Any]:
            account = ops.create_account(conn, body.name)
            if body.credits:
                ops.grant(conn, account["id"], body.credits, "initial credits")
            return ops.get_account(conn, account["id"])

        detail = {"name": body.name, "credits": body.credits}
        return await self._audited(req, act, "account.create", lambda a: a["id"], detail)

    async def list_accounts(self, req: Request) -> dict[str, Any]:
        return {"object": "list", "data": await self.run(ops.list_accounts)}

    async def get_account(self, req: Request) -> dict[str, Any]:
        account_id = req.params["account_id"]
        return await self.run(lambda c: ops.get_account(c, account_id))

    async def grant(self, req: Request) -> dict[str, Any]:
        body = await self._body(req, _Grant)
        account_id = req.params["account_id"]
        balance = await self._audited(
            req,
            lambda c: ops.grant(c, account_id, body.amount, body.note),
            "credits.grant",
            account_id,
            {"amount": body.amount, "note": body.note},
        )
        return {"account_id": account_id, "balance": balance}

    async def ledger(self, req: Request) -> dict[str, Any]:
        account_id = req.params["account_id"]
        raw = req.query.get("limit", "100")
        limit = int(raw) if raw.isdigit() else 100
        rows = await self.run(lambda c: ops.ledger_entries(c, account_id, min(limit, 1000)))
        return {"object": "list", "data": rows}

    async def create_key(self, req: Request) -> dict[str, Any]:
        body = await self._body(req, _NewKey)
        account_id = req.params["account_id"]
        record, key = await self._audited(
            req,
            lambda c: ops.create_key(
                c,
                self.svc.hasher,
                account_id,
                body.name,
                models=body.models,
                expires_at=body.expires_at,
            ),
            "key.create",
            lambda r: r[0]["id"],
            {"account_id": account_id, "name": body.name, "models": body.models},
        )
        return {**record, "key": key}

    async def list_keys(self, req: Request) -> dict[str, Any]:
        account_id = req.params["account_id"]
        return {"object": "list", "data": await self.run(lambda c: ops.list_keys(c, account_id))}

    async def revoke_key(self, req: Request) -> dict[str, Any]:
        key_id = req.params["key_id"]
        row, key_hash = await self._audited(
            req, lambda c: ops.revoke_key(c, key_id), "key.revoke", key_id
        )
        self.svc.keys.forget(key_hash)
        return row

    async def patch_account(self, req: Request) -> dict[str, Any]:
        fields = self._limits_checked(await self._fields(req, _ACCOUNT_FIELDS))
        plan = fields.get("plan")
        if plan is not None and plan not in self.svc.config.plans:
            known = ", ".join(sorted(self.svc.config.plans)) or "none configured"
            raise ValidationFailed(f"Unknown plan {plan!r}; plans: {known}.", param="plan")
        account_id = req.params["account_id"]
        account = await self._audited(
            req,
            lambda c: ops.update_account(c, account_id, fields),
            "account.update",
            account_id,
            fields,
        )
        self.svc.keys.forget()  # the account's keys carry its settings
        return account

    async def patch_key(self, req: Request) -> dict[str, Any]:
        fields = self._limits_checked(await self._fields(req, _KEY_FIELDS))
        key_id = req.params["key_id"]
        row, key_hash = await self._audited(
            req, lambda c: ops.update_key(c, key_id, fields), "key.update", key_id, fields
        )
        self.svc.keys.forget(key_hash)
        return row

    def _limits_checked(self, fields: dict[str, Any]) -> dict[str, Any]:
        if fields.get("limits") is not None:
            try:
                fields["limits"] = check_overrides(fields["limits"])
            except LimitsConfigError as exc:
                raise ValidationFailed(str(exc), param="limits") from None
        return fields

    async def _fields(self, req: Request, allowed: frozenset[str]) -> dict[str, Any]:
        data = await json_body(self.svc, req)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValidationFailed(
                f"Unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}."
            )
        return data

    async def routing_state(self, req: Request) -> dict[str, Any]:
        balancer = self.svc.balancer
        return {"deployments": balancer.snapshot(), "upstream_keys": balancer.set_aside_keys()}

    async def reload(self, req: Request) -> dict[str, Any]:
        try:
            reloaded = self._reload()
        except ConfigError as exc:
            raise BadRequest(
                f"The new configuration was refused; the old one keeps serving. {exc}",
                code="config_invalid",
            ) from None
        await self._audited(req, lambda c: None, "config.reload", None, {"reloaded": reloaded})
        return {"reloaded": reloaded}

    async def routing_reset(self, req: Request) -> dict[str, Any]:
        self.svc.balancer.reset()
        await self._audited(req, lambda c: None, "routing.reset", None)
        return {"reset": True}

    def routes(self, prefix: str = "/admin/v1") -> list[Route]:
        """Its routes, for the route table (`faregate.api.routes`)."""

        def add(
            path: str, method: str, fn: Callable[[Request], Awaitable[Any]], status: int = 200
        ) -> Route:
            return admin_route(f"{prefix}{path}", method, self._route(fn, status))

        return [
            add("/accounts", "POST", self.create_account, 201),
            add("/accounts", "GET", self.list_accounts),
            add("/accounts/{account_id}", "GET", self.get_account),
            add("/accounts/{account_id}/credits", "POST", self.grant),
            add("/accounts/{account_id}/ledger", "GET", self.ledger),
            add("/accounts/{account_id}/keys", "POST", self.create_key, 201),
            add("/accounts/{account_id}/keys", "GET", self.list_keys),
            add("/keys/{key_id}/revoke", "POST", self.revoke_key),
            add("/accounts/{account_id}", "PATCH", self.patch_account),
            add("/keys/{key_id}", "PATCH", self.patch_key),
            add("/routing", "GET", self.routing_state),
            add("/routing/reset", "POST", self.routing_reset),
            add("/reload", "POST", self.reload),
        ]


def admin_route(path: str, method: str, handler: Handler) -> Route:
    """A route of the admin API: admin envelope, admin visibility, never metered."""
    return Route(path, frozenset({method}), handler, "admin", None, Visibility.ADMIN)
