"""The client's pages: dashboard, API keys, usage (and CSV), top-up, playground key."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from faregate.admin import audit, codes, ops
from faregate.admin.ops import AdminError
from faregate.api.usage import date_range
from faregate.billing.spend import PERIODS
from faregate.billing.store import now_ms
from faregate.console import logins, reports
from faregate.console.web import Console, Refused, Session, form, json_reply, redirect
from faregate.http.request import Request
from faregate.http.responses import BytesStream, Response, attachment
from faregate.usage import queries

PLAYGROUND_KEY = "Playground (console session)"
NAME_MAX = 100


def _day(ms: int | None) -> str:
    """The UTC day a key expires at the end of (as the expiry field takes it)."""
    if not ms:
        return ""
    return dt.datetime.fromtimestamp((ms - 1) / 1000, dt.UTC).date().isoformat()


def _split(raw: str) -> list[str]:
    return [part for part in re.split(r"[\s,]+", raw.strip()) if part]


class ClientPages:
    def __init__(self, console: Console) -> None:
        self.c = console

    def _account(self, session: Session) -> str:
        if session.account_id is None:
            raise Refused(404, "You are not a member of any account yet; ask your operator.")
        return session.account_id

    def _models(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "kind": str(entry.kind), "price": entry.price}
            for name, entry in sorted(self.c.svc.catalog.models.items())
        ]

    # -- dashboard -----------------------------------------------------------------

    async def dashboard(self, req: Request, session: Session) -> Response:
        if session.account_id is None:
            if session.operator:
                return redirect("/console/admin")
            raise Refused(404, "You are not a member of any account yet; ask your operator.")
        account_id = session.account_id
        view = await self.c.svc.store.balance(account_id)
        data = await self.c.run(lambda c: reports.dashboard(c, account_id))
        spend_bars = reports.bars(data["days"], data["spend"], self.c.usd)
        request_bars = reports.bars(data["days"], data["requests"], lambda n: f"{n} requests")
        return self.c.render(
            req,
            "dashboard.html",
            session,
            balance=view.balance,
            held=view.held,
            data=data,
            spend_bars=spend_bars,
            request_bars=request_bars,
            models=self._models(),
        )

    async def switch_account(self, req: Request, session: Session) -> Response:
        """Act for another account the user belongs to."""
        account_id = (await form(req)).get("account_id", "")
        if account_id not in {a for a, _ in session.accounts}:
            raise Refused(404, "You are not a member of this account.")
        await self.c.run(lambda c: logins.set_session_account(c, session.id, account_id))
        return redirect("/console")

    # -- keys ----------------------------------------------------------------------

    async def keys(
        self, req: Request, session: Session, status: int = 200, **extra: Any
    ) -> Response:
        account_id = self._account(session)

        def read(c: Connection) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
            return ops.list_keys(c, account_id), reports.key_stats(c, account_id)

        keys, stats = await self.c.run(read)
        keys = [k for k in keys if not (k["name"] == PLAYGROUND_KEY and k["revoked_at"])]
        return self.c.render(
            req,
            "keys.html",
            session,
            status,
            keys=keys,
            stats=stats,
            models=self._models(),
            periods=PERIODS,
            now=now_ms(),
            playground=PLAYGROUND_KEY,
            day=_day,
            dollars=lambda amount: self._dollars(amount),
            **extra,
        )

    async def create_key(self, req: Request, session: Session) -> Response:
        account_id = self._account(session)
        fields = await form(req)
        try:
            name, changes = self._key_fields(fields)
            record, key = await self.c.run(
                audit.audited(
                    lambda c: self._create(c, account_id, name, changes),
                    session.actor,
                    "key.create",
                    lambda r: str(r[0]["id"]),
                    {"account_id": account_id, "name": name, **changes},
                )
            )
        except AdminError as exc:
            return await self.keys(req, session, 422, error=exc.message, form=fields)
        return await self.keys(req, session, 201, created=record, secret=key)

    def _create(
        self, c: Connection, account_id: str, name: str, changes: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        record, key = ops.create_key(c, self.c.svc.hasher, account_id, name)
        if changes:
            record, _ = ops.update_key(c, record["id"], changes)
        return record, key

    def _key_fields(self, fields: dict[str, str]) -> tuple[str, dict[str, Any]]:
        name = fields.get("name", "").strip()[:NAME_MAX] or "default"
        changes: dict[str, Any] = {}
        models = _split(fields.get("models", ""))
        unknown = sorted(set(models) - set(self.c.svc.catalog.models))
        if unknown:
            raise AdminError(f"unknown model(s): {', '.join(unknown)}", 422)
        if models:
            changes["models"] = models
        ips = _split(fields.get("ips", ""))
        if ips:
            changes["restrictions"] = {"ips": ips}
        expires = reports.day_end_ms(fields.get("expires", ""), "expiry")
        if expires is not None:
            if expires <= now_ms():
                raise AdminError("the expiry date is in the past", 422)
            changes["expires_at"] = expires
        rate = self.c.svc.config.billing.micro_credits_per_usd
        limit = reports.usd_amount(fields.get("spend_limit", ""), rate, "spend limit")
        if limit is not None:
            period = fields.get("spend_period", "monthly")
            changes["spend_limit"], changes["spend_period"] = limit, period
        return name, changes

    async def edit_key(self, req: Request, session: Session) -> Response:
        """Change a key's name, models, IP ranges, expiry or spend limit (a blank field
        clears it)."""
        account_id = self._account(session)
        key_id = req.params["key_id"]
        fields = await form(req)
        try:
            name, changes = self._key_fields(fields)
            changes = {
                "name": name,
                "models": None,
                "restrictions": None,
                "expires_at": None,
                "spend_limit": None,
                "spend_period": None,
                **changes,
            }

            def act(c: Connection) -> tuple[dict[str, Any], str]:
                found = [k for k in ops.list_keys(c, account_id) if k["id"] == key_id]
                if not found:
                    raise AdminError("no such key in your account", 404)
                # Origins, hours and countries set through the admin API are kept.
                kept = {k: v for k, v in (found[0]["restrictions"] or {}).items() if k != "ips"}
                ips = (changes["restrictions"] or {}).get("ips")
                merged = {**kept, **({"ips": ips} if ips else {})}
                return ops.update_key(c, key_id, {**changes, "restrictions": merged or None})

            row, key_hash = await self.c.run(
                audit.audited(act, session.actor, "key.update", key_id, changes)
            )
        except AdminError as exc:
            return await self.keys(req, session, exc.status, error=exc.message)
        self.c.svc.keys.forget(key_hash)
        return await self.keys(req, session, notice=f"The key {row['name']} was changed.")

    async def revoke_key(self, req: Request, session: Session) -> Response:
        account_id = self._account(session)
        key_id = req.params["key_id"]

        def act(c: Connection) -> tuple[dict[str, Any], str]:
            if not any(k["id"] == key_id for k in ops.list_keys(c, account_id)):
                raise AdminError("no such key in your account", 404)
            return ops.revoke_key(c, key_id)

        row, key_hash = await self.c.run(audit.audited(act, session.actor, "key.revoke", key_id))
        self.c.svc.keys.forget(key_hash)
        return await self.keys(req, session, notice=f"The key {row['name']} was revoked.")

    def _dollars(self, amount: int | None) -> str:
        if amount is None:
            return ""
        rate = self.c.svc.config.billing.micro_credits_per_usd
        return str((Decimal(amount) / rate).normalize())

    # -- usage ---------------------------------------------------------------------

    def _requests_query(self, req: Request, account_id: str, limit: int) -> queries.RequestsQuery:
        q = req.query
        try:
            first, last = date_range(q)
        except Exception as exc:  # BadRequest: shown on the page
            raise Refused(400, getattr(exc, "message", "Bad dates.")) from None
        return queries.RequestsQuery(
            first=first,
            last=last,
            account_id=account_id,
            key_id=q.get("key_id") or None,
            model=q.get("model") or None,
            limit=limit,
            cursor=q.get("cursor") or None,
        )

    async def usage(self, req: Request, session: Session) -> Response:
        account_id = self._account(session)
        rq = self._requests_query(req, account_id, 50)
        try:
            page = await self.c.run(lambda c: queries.requests(c, rq))
        except ValueError:
            raise Refused(400, "This page link is not valid.") from None
        keys = await self.c.run(lambda c: ops.list_keys(c, account_id))
        filters = {
            "from": rq.first.isoformat(),
            "to": rq.last.isoformat(),
            "key_id": rq.key_id or "",
            "model": rq.model or "",
        }
        return self.c.render(
            req,
            "usage.html",
            session,
            rows=page["data"],
            next_cursor=page["next_cursor"],
            filters=filters,
            keys=keys,
            models=sorted(self.c.svc.catalog.models),
        )

    async def usage_csv(self, req: Request, session: Session) -> BytesStream:
        account_id = self._account(session)
        rq = self._requests_query(req, account_id, queries.MAX_ROWS)
        return BytesStream(
            reports.csv_rows(self.c.run, rq),
            "text/csv; charset=utf-8",
            disposition=attachment(f"usage-{rq.first}-{rq.last}.csv"),
        )

    # -- top-up ----------------------------------------------------------------------

    async def topup(
        self, req: Request, session: Session, status: int = 200, **extra: Any
    ) -> Response:
        account_id = self._account(session)
        view = await self.c.svc.store.balance(account_id)
        entries = await self.c.run(lambda c: ops.ledger_entries(c, account_id, 100))
        return self.c.render(
            req, "topup.html", session, status, balance=view.balance, entries=entries, **extra
        )

    async def redeem(self, req: Request, session: Session) -> Response:
        account_id = self._account(session)
        code = (await form(req)).get("code", "").strip()
        if not code:
            return await self.topup(req, session, 422, error="Enter a redemption code.")
        act = audit.audited(
            lambda c: codes.redeem(c, self.c.svc.hasher, code[:200], account_id),
            session.actor,
            "code.redeem",
            lambda r: str(r["code_id"]),
            lambda r: {"account_id": account_id, "amount": r["amount"]},
        )
        try:
            result = await self.c.run(act)
        except AdminError as exc:
            return await self.topup(req, session, exc.status, error=exc.message)
        notice = f"Redeemed: {self.c.usd(result['amount'])} added to your balance."
        return await self.topup(req, session, notice=notice)

    # -- playground ------------------------------------------------------------------

    async def playground(self, req: Request, session: Session) -> Response:
        self._account(session)
        models = [m for m in self._models() if m["kind"] in ("chat", "images")]
        return self.c.render(req, "playground.html", session, models=models)

    async def playground_key(self, req: Request, session: Session) -> Response:
        """A key for this session only, sent to the playground's script (kept in memory
        there, never in the page): it expires with the session and is revoked when the
        session ends or asks for a new one."""
        account_id = self._account(session)
        old = session.playground_key_id

        def act(c: Connection) -> tuple[dict[str, Any], str, str | None]:
            old_hash = None
            if old is not None:
                with_hash = ops.revoke_key(c, old)
                old_hash = with_hash[1]
            record, key = ops.create_key(
                c, self.c.svc.hasher, account_id, PLAYGROUND_KEY, expires_at=session.expires_at
            )
            logins.set_playground_key(c, session.id, record["id"])
            return record, key, old_hash

        record, key, old_hash = await self.c.run(
            audit.audited(
                act,
                session.actor,
                "key.create",
                lambda r: str(r[0]["id"]),
                {"account_id": account_id, "name": PLAYGROUND_KEY},
            )
        )
        if old_hash is not None:
            self.c.svc.keys.forget(old_hash)
        return json_reply({"key": key, "key_id": record["id"], "expires_at": record["expires_at"]})
