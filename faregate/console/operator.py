"""The operator's pages: accounts and members, users, keys, credits, codes, prices and plans,
routing health, usage and the audit log. Each action calls the admin API's own functions
and writes its audit row with the operator's identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection

from faregate.admin import audit, catalog_ops, codes, ops, users
from faregate.admin.ops import AdminError
from faregate.api.usage import usage_query
from faregate.console import logins, reports
from faregate.console.web import Console, Refused, Session, form, redirect
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.usage import queries

T = TypeVar("T")


class OperatorPages:
    def __init__(self, console: Console) -> None:
        self.c = console

    async def _act(
        self,
        session: Session,
        fn: Callable[[Connection], T],
        action: str,
        target: str | Callable[[T], str | None] | None,
        detail: Any = None,
    ) -> T:
        return await self.c.run(audit.audited(fn, session.actor, action, target, detail))

    def _rate(self) -> int:
        return self.c.svc.config.billing.micro_credits_per_usd

    # -- accounts ------------------------------------------------------------------

    async def accounts(
        self, req: Request, session: Session, status: int = 200, **extra: Any
    ) -> Response:
        rows = await self.c.run(ops.list_accounts)
        return self.c.render(req, "admin/accounts.html", session, status, accounts=rows, **extra)

    async def create_account(self, req: Request, session: Session) -> Response:
        fields = await form(req)
        name = fields.get("name", "").strip()[:200]
        if not name:
            return await self.accounts(req, session, 422, error="Give the account a name.")
        credits = reports.usd_amount(fields.get("credits", ""), self._rate(), "credits") or 0

        def act(c: Connection) -> dict[str, Any]:
            account = ops.create_account(c, name)
            if credits:
                ops.grant(c, account["id"], credits, "initial credits")
            return account

        account = await self._act(
            session,
            act,
            "account.create",
            lambda a: str(a["id"]),
            {"name": name, "credits": credits},
        )
        return redirect(f"/console/admin/accounts/{account['id']}")

    async def account(
        self, req: Request, session: Session, status: int = 200, **extra: Any
    ) -> Response:
        account_id = req.params["account_id"]

        def read(c: Connection) -> dict[str, Any]:
            return {
                "account": ops.get_account(c, account_id),
                "members": users.list_members(c, account_id),
                "keys": ops.list_keys(c, account_id),
                "stats": reports.key_stats(c, account_id),
                "ledger": ops.ledger_entries(c, account_id, 50),
            }

        data = await self.c.run(read)
        return self.c.render(
            req,
            "admin/account.html",
            session,
            status,
            plans=sorted(self.c.svc.config.plans),
            **data,
            **extra,
        )

    async def grant(self, req: Request, session: Session) -> Response:
        account_id = req.params["account_id"]
        fields = await form(req)
        note = fields.get("note", "").strip()[:500] or None
        try:
            amount = reports.usd_amount(
                fields.get("amount", "").lstrip("-"), self._rate(), "amount"
            )
            if amount is None:
                raise AdminError("enter an amount in dollars", 422)
            if fields.get("amount", "").strip().startswith("-"):
                amount = -amount
            balance = await self._act(
                session,
                lambda c: ops.grant(c, account_id, amount, note),
                "credits.grant",
                account_id,
                {"amount": amount, "note": note},
            )
        except AdminError as exc:
            return await self.account(req, session, exc.status, error=exc.message)
        notice = f"Done: the balance is now {self.c.usd(balance)}."
        return await self.account(req, session, notice=notice)

    async def create_key(self, req: Request, session: Session) -> Response:
        account_id = req.params["account_id"]
        name = (await form(req)).get("name", "").strip()[:100] or "default"
        record, key = await self._act(
            session,
            lambda c: ops.create_key(c, self.c.svc.hasher, account_id, name),
            "key.create",
            lambda r: str(r[0]["id"]),
            {"account_id": account_id, "name": name},
        )
        return await self.account(req, session, 201, created=record, secret=key)

    async def revoke_key(self, req: Request, session: Session) -> Response:
        key_id = req.params["key_id"]
        row, key_hash = await self._act(
            session, lambda c: ops.revoke_key(c, key_id), "key.revoke", key_id
        )
        self.c.svc.keys.forget(key_hash)
        return redirect(f"/console/admin/accounts/{row['account_id']}")

    async def add_member(self, req: Request, session: Session) -> Response:
        account_id = req.params["account_id"]
        fields = await form(req)
        email, role = fields.get("email", "").strip(), fields.get("role", "member")

        def act(c: Connection) -> dict[str, Any]:
            found, _ = users.list_users(c, email=email, limit=1)
            if not found:
                raise AdminError(f"no user with the email {email!r}", 404)
            return users.add_member(c, account_id, str(found[0]["id"]), role)

        try:
            await self._act(session, act, "member.add", account_id, {"email": email, "role": role})
        except AdminError as exc:
            return await self.account(req, session, exc.status, error=exc.message)
        return redirect(f"/console/admin/accounts/{account_id}")

    async def remove_member(self, req: Request, session: Session) -> Response:
        account_id, user_id = req.params["account_id"], req.params["user_id"]
        try:
            await self._act(
                session,
                lambda c: users.remove_member(c, account_id, user_id),
                "member.remove",
                account_id,
                {"user_id": user_id},
            )
        except AdminError as exc:
            return await self.account(req, session, exc.status, error=exc.message)
        return redirect(f"/console/admin/accounts/{account_id}")

    # -- users -----------------------------------------------------------------------

    async def users(
        self, req: Request, session: Session, status: int = 200, **extra: Any
    ) -> Response:
        cursor = req.query.get("cursor") or None

        def read(c: Connection) -> tuple[list[dict[str, Any]], str | None, set[str]]:
            rows, more = users.list_users(c, limit=100, cursor=cursor)
            return rows, more, logins.operators(c)

        rows, more, operators = await self.c.run(read)
        return self.c.render(
            req,
            "admin/users.html",
            session,
            status,
            users=rows,
            next_cursor=more,
            operators=operators,
            **extra,
        )

    async def create_user(self, req: Request, session: Session) -> Response:
        fields = await form(req)
        email, name = fields.get("email", ""), fields.get("name", "")[:200]
        try:
            user = await self._act(
                session,
                lambda c: users.create_user(c, email, name),
                "user.create",
                lambda u: str(u["id"]),
                {"email": email},
            )
        except AdminError as exc:
            return await self.users(req, session, exc.status, error=exc.message)
        return await self.users(req, session, 201, notice=f"User {user['email']} created.")

    async def reset_link(self, req: Request, session: Session) -> Response:
        user_id = req.params["user_id"]
        hours = self.c.config.reset_hours
        token = await self._act(
            session,
            lambda c: logins.issue_reset(c, self.c.svc.hasher, user_id, session.actor, hours),
            "console.reset_link",
            user_id,
        )
        base = _base_url(req)
        return await self.users(
            req, session, reset_link=f"{base}/console/reset#{token}", reset_user=user_id
        )

    async def disable_user(self, req: Request, session: Session) -> Response:
        user_id = req.params["user_id"]

        def act(c: Connection) -> tuple[dict[str, Any], list[str]]:
            result = users.disable_user(c, user_id)
            logins.close_sessions_of(c, user_id)
            return result

        _, hashes = await self._act(session, act, "user.disable", user_id)
        for key_hash in hashes:
            self.c.svc.keys.forget(key_hash)
        return await self.users(
            req, session, notice="The user was disabled and their keys revoked."
        )

    async def set_operator(self, req: Request, session: Session) -> Response:
        user_id = req.params["user_id"]
        flag = (await form(req)).get("operator") == "1"
        if user_id == session.user_id and not flag:
            raise Refused(409, "You cannot remove your own operator role.")
        await self._act(
            session,
            lambda c: logins.set_operator(c, user_id, flag),
            "console.operator",
            user_id,
            {"operator": flag},
        )
        return redirect("/console/admin/users")

    # -- codes ---------------------------------------------------------------------

    async def codes(
        self, req: Request, session: Session, status: int = 200, **extra: Any
    ) -> Response:
        rows, _ = await self.c.run(lambda c: codes.list_codes(c, limit=1000))
        return self.c.render(req, "admin/codes.html", session, status, codes=rows, **extra)

    async def create_code(self, req: Request, session: Session) -> Response:
        fields = await form(req)
        try:
            amount = reports.usd_amount(fields.get("amount", ""), self._rate(), "amount") or 0
            uses_raw = fields.get("max_uses", "1").strip() or "1"
            if not uses_raw.isdigit():
                raise AdminError("uses must be a whole number", 422)
            max_uses = int(uses_raw)
            expires = reports.day_end_ms(fields.get("expires", ""), "expiry")
            record, code = await self._act(
                session,
                lambda c: codes.create_code(
                    c, self.c.svc.hasher, amount, max_uses=max_uses, expires_at=expires
                ),
                "code.create",
                lambda r: str(r[0]["id"]),
                {"amount": amount, "max_uses": max_uses, "expires_at": expires},
            )
        except AdminError as exc:
            return await self.codes(req, session, exc.status, error=exc.message)
        return await self.codes(req, session, 201, created=record, secret=code)

    async def code(self, req: Request, session: Session) -> Response:
        code_id = req.params["code_id"]
        row = await self.c.run(lambda c: codes.get_code(c, code_id))
        return self.c.render(req, "admin/code.html", session, code=row)

    async def revoke_code(self, req: Request, session: Session) -> Response:
        code_id = req.params["code_id"]
        await self._act(session, lambda c: codes.revoke_code(c, code_id), "code.revoke", code_id)
        return redirect("/console/admin/codes")

    # -- prices and plans ----------------------------------------------------------------

    async def prices(
        self, req: Request, session: Session, status: int = 200, **extra: Any
    ) -> Response:
        app = self.c.gateway
        prices = [
            {"model": name, "price": model.price, "stored": name in app.overrides.prices}
            for name, model in sorted(app.config.models.items())
        ]
        plans = [
            {
                "name": name,
                "limits": orjson.dumps(plan.model_dump(exclude_none=True)).decode(),
                "stored": name in app.overrides.plans,
            }
            for name, plan in sorted(app.config.plans.items())
        ]
        return self.c.render(
            req, "admin/prices.html", session, status, prices=prices, plans=plans, **extra
        )

    async def set_price(self, req: Request, session: Session) -> Response:
        model = req.params["model"]
        fields = await form(req)
        body: dict[str, Any] = {}
        try:
            for name in ("input", "output", "cached_input"):
                raw = fields.get(name, "").strip()
                if raw:
                    if not raw.isdigit():
                        raise AdminError(
                            f"{name}: a whole number of micro-credits per million tokens", 422
                        )
                    body[name] = int(raw)
            app = self.c.gateway
            await self._act(
                session,
                lambda c: catalog_ops.set_price(c, app.config, model, body),
                "price.set",
                model,
                body,
            )
        except AdminError as exc:
            return await self.prices(req, session, exc.status, error=exc.message)
        await self.c.gateway.refresh_overrides()
        return await self.prices(req, session, notice=f"The price of {model} was changed.")

    async def delete_price(self, req: Request, session: Session) -> Response:
        model = req.params["model"]
        await self._act(
            session, lambda c: catalog_ops.delete_price(c, model), "price.delete", model
        )
        await self.c.gateway.refresh_overrides()
        return await self.prices(req, session, notice=f"{model} is back to the config's price.")

    async def set_plan(self, req: Request, session: Session) -> Response:
        fields = await form(req)
        name = fields.get("name", "").strip()[:64]
        try:
            body = orjson.loads(fields.get("limits", "") or "{}")
            if not name or not isinstance(body, dict):
                raise AdminError("a plan needs a name and its limits as a JSON object", 422)
            app = self.c.gateway
            await self._act(
                session,
                lambda c: catalog_ops.set_plan(c, app.config, name, body),
                "plan.set",
                name,
                body,
            )
        except orjson.JSONDecodeError:
            return await self.prices(req, session, 422, error="The limits are not valid JSON.")
        except AdminError as exc:
            return await self.prices(req, session, exc.status, error=exc.message)
        await self.c.gateway.refresh_overrides()
        return await self.prices(req, session, notice=f"The plan {name} was saved.")

    async def delete_plan(self, req: Request, session: Session) -> Response:
        name = req.params["name"]
        await self._act(session, lambda c: catalog_ops.delete_plan(c, name), "plan.delete", name)
        await self.c.gateway.refresh_overrides()
        return await self.prices(req, session, notice=f"The stored plan {name} was deleted.")

    # -- routing, usage, audit -------------------------------------------------------------

    async def routing(self, req: Request, session: Session, **extra: Any) -> Response:
        balancer = self.c.svc.balancer
        deployments = []
        for name, entry in sorted(self.c.svc.catalog.models.items()):
            for dep in entry.deployments:
                deployments.append({"model": name, "id": dep.id, "provider": dep.provider})
        return self.c.render(
            req,
            "admin/routing.html",
            session,
            deployments=deployments,
            health=balancer.snapshot(),
            keys=balancer.set_aside_keys(),
            **extra,
        )

    async def routing_reset(self, req: Request, session: Session) -> Response:
        self.c.svc.balancer.reset()
        await self._act(session, lambda c: None, "routing.reset", None)
        return await self.routing(req, session, notice="Breakers and cooldowns were reset.")

    async def usage(self, req: Request, session: Session) -> Response:
        q = dict(req.query)
        q.setdefault("group_by", "day")
        try:
            uq = usage_query(q, q.get("account_id") or None, q.get("key_id") or None)
        except Exception as exc:
            raise Refused(400, getattr(exc, "message", "Bad filters.")) from None
        result = await self.c.run(lambda c: queries.summary(c, uq))
        filters = {
            "from": uq.first.isoformat(),
            "to": uq.last.isoformat(),
            "group_by": uq.group_by,
            "account_id": uq.account_id or "",
            "key_id": uq.key_id or "",
        }
        return self.c.render(req, "admin/usage.html", session, result=result, filters=filters)

    async def audit(self, req: Request, session: Session) -> Response:
        q = req.query
        cursor_raw = q.get("cursor", "")
        cursor = int(cursor_raw) if cursor_raw.isdigit() else None
        filters = audit.AuditFilters(
            actor=q.get("actor") or None,
            action=q.get("action") or None,
            target=q.get("target") or None,
        )
        rows, more = await self.c.run(lambda c: audit.list_entries(c, filters, 100, cursor))
        return self.c.render(
            req,
            "admin/audit.html",
            session,
            rows=rows,
            next_cursor=more,
            filters={
                "actor": filters.actor or "",
                "action": filters.action or "",
                "target": filters.target or "",
            },
        )


def _base_url(req: Request) -> str:
    host = req.headers.get("host", "localhost")
    scheme = req.scope.get("scheme", "http")
    return f"{scheme}://{host}"
