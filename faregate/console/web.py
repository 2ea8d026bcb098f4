"""What every console page shares: templates (autoescaped), security headers, cookies,
url-encoded forms under caps, the signed-in session and CSRF checks."""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Connection

from faregate.admin import users
from faregate.admin.ops import AdminError
from faregate.api.admin_catalog import Gateway as CatalogGateway
from faregate.api.common import caller_address
from faregate.auth import restrictions
from faregate.auth.throttle import Throttle
from faregate.billing.pricing import to_usd
from faregate.console import logins
from faregate.console.config import ConsoleConfig
from faregate.db.engine import AdminDB
from faregate.errors import BadRequest, FaregateError, PayloadTooLarge
from faregate.http.request import Request
from faregate.http.responses import Headers, Response, StreamResponse
from faregate.pipeline.services import Services

if TYPE_CHECKING:
    from jinja2 import Environment

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "fg_console"
CSRF_COOKIE = "fg_console_csrf"
MAX_FORM_BYTES = 64 * 1024
MAX_FIELDS = 64
BAD_TOKEN = "The form's security token is missing or wrong: reload the page and try again."
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Headers = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class Gateway(CatalogGateway, Protocol):
    """What the console needs of the app: the catalog's config and its stored overrides."""


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in visitor: their user, their login and the account they act for."""

    id: str
    user_id: str
    email: str
    name: str
    operator: bool
    csrf: str
    expires_at: int
    playground_key_id: str | None
    account_id: str | None
    account_name: str | None
    accounts: tuple[tuple[str, str], ...] = ()  # (id, name) of every account of the user

    @property
    def actor(self) -> str:
        """Who acts, for the audit log."""
        return f"console:{self.user_id}"


@dataclass
class Console:
    """The console's dependencies, built once with the routes."""

    svc: Services
    db: AdminDB
    gateway: Gateway
    throttle: Throttle = field(default_factory=Throttle)

    @property
    def templates(self) -> Environment:
        """The page templates, loaded with Jinja on the first page served."""
        return _environment(HERE / "templates")

    @property
    def config(self) -> ConsoleConfig:
        return self.svc.config.console

    def usd(self, amount: int | None) -> str:
        return "$" + to_usd(int(amount or 0), self.svc.config.billing.micro_credits_per_usd)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        return await self.db.run(fn)

    def render(
        self,
        req: Request,
        template: str,
        session: Session | None,
        status: int = 200,
        headers: Headers | None = None,
        **context: Any,
    ) -> Response:
        page = self.templates.get_template(template).render(
            session=session,
            csrf=session.csrf if session is not None else context.pop("csrf", ""),
            path=req.path,
            usd=self.usd,
            **context,
        )
        return html(page.encode(), status, headers)

    async def session(self, req: Request) -> Session | None:
        token = cookies(req).get(SESSION_COOKIE)
        if not token or len(token) > 128:
            return None
        row = await self.run(lambda c: logins.session_of(c, self.svc.hasher, token))
        if row is None:
            return None
        accounts = await self.run(lambda c: users.user_accounts(c, str(row["user_id"])))
        chosen = [a for a in accounts if a["account_id"] == row["account_id"]]
        first = chosen[0] if chosen else accounts[0] if accounts else None
        return Session(
            id=str(row["id"]),
            user_id=str(row["user_id"]),
            email=str(row["email"]),
            name=str(row["name"]),
            operator=bool(row["operator"]),
            csrf=str(row["csrf"]),
            expires_at=int(row["expires_at"]),
            playground_key_id=row["playground_key_id"],
            account_id=None if first is None else str(first["account_id"]),
            account_name=None if first is None else str(first["name"]),
            accounts=tuple((str(a["account_id"]), str(a["name"])) for a in accounts),
        )

    def secure(self, req: Request) -> bool:
        """Whether cookies carry `Secure`: as configured, or when the page came over TLS
        (directly, or from a trusted proxy that says so)."""
        mode = self.config.cookie_secure
        if mode != "auto":
            return mode == "always"
        if req.scope.get("scheme") == "https":
            return True
        trusted = restrictions.networks(tuple(self.svc.config.server.trusted_proxies))
        peer = restrictions.parse_ip(req.client_host or "")
        from_proxy = peer is not None and any(peer in net for net in trusted)
        return from_proxy and req.headers.get("x-forwarded-proto", "").lower() == "https"

    def cookie(self, req: Request, name: str, value: str, max_age: int) -> tuple[bytes, bytes]:
        parts = [f"{name}={value}", "Path=/console", f"Max-Age={max_age}", "HttpOnly"]
        parts.append("SameSite=Lax" if name == SESSION_COOKIE else "SameSite=Strict")
        if self.secure(req):
            parts.append("Secure")
        return (b"set-cookie", "; ".join(parts).encode("latin-1"))

    def address(self, req: Request) -> str:
        return caller_address(self.svc, req)


@functools.cache
def _environment(folder: Path) -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["qs"] = lambda d: urlencode({k: v for k, v in d.items() if v})
    return env


def when(ms: int | None) -> str:
    if not ms:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def html(body: bytes, status: int = 200, headers: Headers | None = None) -> Response:
    return Response(
        body,
        status,
        [(b"content-type", b"text/html; charset=utf-8"), *SECURITY_HEADERS, *(headers or [])],
    )


def redirect(location: str, headers: Headers | None = None) -> Response:
    return Response(
        b"", 303, [(b"location", location.encode("latin-1")), *SECURITY_HEADERS, *(headers or [])]
    )


def json_reply(data: Any, status: int = 200) -> Response:
    reply = Response.json(data, status)
    reply.headers = [*reply.headers, *SECURITY_HEADERS]
    return reply


def cookies(req: Request) -> dict[str, str]:
    raw = req.headers.get("cookie", "")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


async def form(req: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body, at most 64 KiB and 64 fields; the last
    value of a repeated field wins."""
    kind = req.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("Send the form as application/x-www-form-urlencoded.", code="bad_form")
    raw = await req.body(MAX_FORM_BYTES)
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            encoding="utf-8",
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The form could not be read.", code="bad_form") from None
    return dict(pairs)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console"


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]
PageFn = Callable[[Request, Session], Awaitable[Response | StreamResponse]]


class Refused(Exception):
    """A console request refused with a status and a message shown on an error page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def problem_page(
    console: Console, req: Request, session: Session | None, status: int, message: str
) -> Response:
    if req.path.startswith("/console/api/"):
        return json_reply({"error": {"message": message}}, status)
    return console.render(req, "error.html", session, status, message=message, code=status)


def guarded(console: Console, fn: PageFn, *, operator: bool = False) -> Handler:
    """A page for signed-in visitors: signed-out visitors are sent to sign in; operator pages
    are refused (403) to clients; a POST must carry the session's CSRF token (form field
    `csrf` or header `x-csrf-token`)."""

    async def handle(req: Request) -> Response | StreamResponse:
        session = await console.session(req)
        if session is None:
            if req.method != "GET":
                return problem_page(
                    console, req, None, 401, "Your session has ended: sign in again."
                )
            query = req.scope.get("query_string", b"").decode("latin-1")
            target = req.path + (f"?{query}" if query else "")
            return redirect("/console/signin?" + urlencode({"next": target}))
        if operator and not session.operator:
            return problem_page(console, req, session, 403, "This page is for operators only.")
        try:
            if req.method == "POST":
                given = req.headers.get("x-csrf-token")
                if given is None:
                    try:
                        given = (await form(req)).get("csrf")
                    except BadRequest:
                        given = None
                if not csrf_ok(session.csrf, given):
                    raise Refused(403, BAD_TOKEN)
            return await fn(req, session)
        except Refused as exc:
            return problem_page(console, req, session, exc.status, exc.message)
        except AdminError as exc:
            return problem_page(console, req, session, exc.status, exc.message)
        except FaregateError as exc:
            return problem_page(console, req, session, exc.status, exc.message)

    return handle


def caught(console: Console, fn: Handler) -> Handler:
    """A console handler whose refusals become error pages (never a 500)."""

    async def handle(req: Request) -> Response | StreamResponse:
        try:
            return await fn(req)
        except Refused as exc:
            return problem_page(console, req, None, exc.status, exc.message)
        except (AdminError, FaregateError) as exc:
            return problem_page(console, req, None, exc.status, exc.message)

    return handle


def anonymous_csrf(req: Request) -> tuple[str, list[tuple[bytes, bytes]]]:
    """The signed-out forms' CSRF token (a cookie matched by a hidden field): the one the
    browser has, else a new one with the cookie to set."""
    token = cookies(req).get(CSRF_COOKIE)
    if token and 20 <= len(token) <= 100:
        return token, []
    return secrets.token_urlsafe(32), []


def check_anonymous_csrf(req: Request, fields: Mapping[str, str]) -> None:
    token = cookies(req).get(CSRF_COOKIE)
    if not token or not csrf_ok(token, fields.get("csrf")):
        raise Refused(403, BAD_TOKEN)


def too_large(exc: PayloadTooLarge) -> Refused:
    return Refused(413, exc.message)
