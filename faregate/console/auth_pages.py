"""Sign up, sign in (throttled per address), sign out, change password, reset links."""

from __future__ import annotations

import hmac
from typing import Any

from faregate.admin import audit, ops
from faregate.admin.ops import AdminError
from faregate.console import logins, passwords
from faregate.console.web import (
    BAD_TOKEN,
    CSRF_COOKIE,
    SESSION_COOKIE,
    Console,
    Refused,
    Session,
    anonymous_csrf,
    check_anonymous_csrf,
    form,
    redirect,
    safe_next,
)
from faregate.http.request import Request
from faregate.http.responses import Response


class AuthPages:
    def __init__(self, console: Console) -> None:
        self.c = console

    def _anon_page(
        self, req: Request, template: str, status: int = 200, **context: Any
    ) -> Response:
        token, _ = anonymous_csrf(req)
        set_cookie = self.c.cookie(req, CSRF_COOKIE, token, 3600 * 24)
        return self.c.render(
            req, template, None, status, [set_cookie], csrf=token, config=self.c.config, **context
        )

    async def _start_session(self, req: Request, user_id: str, target: str) -> Response:
        hours = self.c.config.session_hours
        token, _ = await self.c.run(
            lambda c: logins.open_session(c, self.c.svc.hasher, user_id, hours)
        )
        cookie = self.c.cookie(req, SESSION_COOKIE, token, int(hours * 3600))
        return redirect(target, [cookie])

    # -- sign in -----------------------------------------------------------------

    async def signin_page(self, req: Request) -> Response:
        if await self.c.session(req) is not None:
            return redirect(safe_next(req.query.get("next")))
        return self._anon_page(req, "signin.html", next=safe_next(req.query.get("next")))

    async def signin(self, req: Request) -> Response:
        fields = await form(req)
        try:
            check_anonymous_csrf(req, fields)
        except Refused as exc:
            return self._anon_page(
                req, "signin.html", exc.status, error=exc.message, next="/console"
            )
        email, password = fields.get("email", ""), fields.get("password", "")
        target = safe_next(fields.get("next"))
        address = self.c.address(req)
        wait = self.c.throttle.wait(address)
        if wait is not None:
            return self._throttled(req, wait, email, target)
        async with self.c.throttle.one_at_a_time(address):
            wait = self.c.throttle.wait(address)
            if wait is not None:
                return self._throttled(req, wait, email, target)
            login = await self.c.run(lambda c: logins.login_of(c, email))
            stored = None if login is None else login["password_hash"]
            ok = await passwords.verify(stored, password[: passwords.MAX_LENGTH])
            if ok and login is not None and login["disabled_at"] is None:
                self.c.throttle.succeeded(address)
            else:
                failure = self.c.throttle.failed(address)
                detail = {"address": address, "failures": failure.failures}
                await self.c.run(
                    lambda c: audit.record(
                        c, f"addr:{address}", "console.signin_failed", None, detail
                    )
                )
                return self._anon_page(
                    req,
                    "signin.html",
                    401,
                    error="Wrong email or password.",
                    email=email,
                    next=target,
                )
        user_id = str(login["id"])
        await self.c.run(lambda c: audit.record(c, f"console:{user_id}", "console.signin", user_id))
        if target == "/console" and login["operator"]:
            target = "/console/admin"
        return await self._start_session(req, user_id, target)

    def _throttled(self, req: Request, wait: int, email: str, target: str) -> Response:
        page = self._anon_page(
            req,
            "signin.html",
            429,
            error=f"Too many failed sign-ins from this address: try again in {wait} s.",
            email=email,
            next=target,
        )
        page.headers.append((b"retry-after", str(wait).encode()))
        return page

    async def signout(self, req: Request) -> Response:
        session = await self.c.session(req)
        if session is None:
            return redirect("/console/signin")
        fields = await form(req)
        if not hmac.compare_digest(session.csrf.encode(), fields.get("csrf", "").encode()):
            raise Refused(403, BAD_TOKEN)
        key_id = await self.c.run(lambda c: logins.close_session(c, session.id))
        if key_id is not None:
            await self._revoke(session, key_id)
        gone = self.c.cookie(req, SESSION_COOKIE, "", 0)
        return redirect("/console/signin", [gone])

    async def _revoke(self, session: Session, key_id: str) -> None:
        try:
            _, key_hash = await self.c.run(
                audit.audited(
                    lambda c: ops.revoke_key(c, key_id), session.actor, "key.revoke", key_id
                )
            )
        except AdminError:
            return
        self.c.svc.keys.forget(key_hash)

    # -- sign up -----------------------------------------------------------------

    async def signup_page(self, req: Request) -> Response:
        status = 403 if self.c.config.signup == "closed" else 200
        return self._anon_page(req, "signup.html", status)

    async def signup(self, req: Request) -> Response:
        cfg = self.c.config
        fields = await form(req)
        check_anonymous_csrf(req, fields)
        if cfg.signup == "closed":
            return self._anon_page(req, "signup.html", 403)
        email, name = fields.get("email", "").strip(), fields.get("name", "").strip()[:200]
        password = fields.get("password", "")
        error = passwords.problem(password)
        if password != fields.get("password2", ""):
            error = "The two passwords differ."
        if cfg.signup == "invite":
            given = fields.get("invite", "").strip()
            assert cfg.invite_code is not None
            if not hmac.compare_digest(given.encode(), cfg.invite_code.encode()):
                error = "This invitation code is not valid."
        if error is None:
            digest = await passwords.hash_password(password)
            try:
                made = await self.c.run(
                    audit.audited(
                        lambda c: logins.signup(c, email, name, digest, cfg.signup_credits),
                        "console:signup",
                        "console.signup",
                        lambda r: str(r["user"]["id"]),
                        lambda r: {
                            "account_id": r["account"]["id"],
                            "credits": cfg.signup_credits,
                        },
                    )
                )
            except AdminError as exc:
                error = (
                    "An account with this email exists: sign in instead."
                    if exc.status == 409
                    else exc.message
                )
            else:
                return await self._start_session(req, str(made["user"]["id"]), "/console")
        return self._anon_page(req, "signup.html", 422, error=error, email=email, name=name)

    # -- passwords -----------------------------------------------------------------

    async def password_page(self, req: Request, session: Session) -> Response:
        return self.c.render(req, "password.html", session)

    async def change_password(self, req: Request, session: Session) -> Response:
        fields = await form(req)
        login = await self.c.run(lambda c: logins.login_of(c, session.email))
        current = fields.get("current", "")[: passwords.MAX_LENGTH]
        new = fields.get("password", "")
        error = passwords.problem(new)
        if new != fields.get("password2", ""):
            error = "The two new passwords differ."
        if not await passwords.verify(None if login is None else login["password_hash"], current):
            error = "The current password is wrong."
        if error is not None:
            return self.c.render(req, "password.html", session, 422, error=error)
        digest = await passwords.hash_password(new)

        def act(c: Any) -> None:
            logins.set_password(c, session.user_id, digest)
            logins.close_sessions_of(c, session.user_id, keep=session.id)

        await self.c.run(audit.audited(act, session.actor, "console.password", session.user_id))
        return self.c.render(req, "password.html", session, notice="Your password was changed.")

    async def reset_page(self, req: Request) -> Response:
        """The form of a reset link. The link carries its token after `#`, which browsers
        never send: the page's script moves it into the form, so it stays out of every URL
        the server sees and of the access log."""
        return self._anon_page(req, "reset.html", valid=True)

    async def reset(self, req: Request) -> Response:
        fields = await form(req)
        check_anonymous_csrf(req, fields)
        token = fields.get("token", "").strip()[:100]
        new = fields.get("password", "")
        error = passwords.problem(new)
        if new != fields.get("password2", ""):
            error = "The two passwords differ."
        if error is not None:
            return self._anon_page(req, "reset.html", 422, valid=True, error=error, token=token)
        digest = await passwords.hash_password(new)
        try:
            user_id = await self.c.run(
                audit.audited(
                    lambda c: logins.use_reset(c, self.c.svc.hasher, token, digest),
                    "console:reset",
                    "console.password_reset",
                    lambda uid: uid,
                )
            )
        except AdminError:
            return self._anon_page(req, "reset.html", 404, valid=False)
        return await self._start_session(req, user_id, "/console")
