"""The console's routes: its pages, assets, the API reference and `/openapi.json`."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

import orjson

from faregate.api import openapi
from faregate.console.auth_pages import AuthPages
from faregate.console.client import ClientPages
from faregate.console.operator import OperatorPages
from faregate.console.web import (
    HERE,
    SECURITY_HEADERS,
    Console,
    Handler,
    PageFn,
    Session,
    caught,
    guarded,
    redirect,
)
from faregate.errors import NotFound
from faregate.http.request import Request
from faregate.http.responses import FileResponse, Response
from faregate.http.router import Route, Visibility
from faregate.kinds import Kind

STATIC = HERE / "static"
SWAGGER_FILES = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"}
)
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def base_url(req: Request) -> str:
    """This gateway's address as the browser reached it."""
    host = req.headers.get("host", "")
    if not _HOST.match(host):
        host = "localhost"
    scheme = "https" if req.scope.get("scheme") == "https" else "http"
    forwarded = req.headers.get("x-forwarded-proto", "").lower()
    if forwarded in ("http", "https"):
        scheme = forwarded
    return f"{scheme}://{host}"


def _asset(folder: Path, name: str, allowed: Iterable[str]) -> FileResponse:
    if name not in allowed:
        raise NotFound("No such file.", code="file_not_found")
    reply = FileResponse(folder / name)
    reply.headers += [*SECURITY_HEADERS[:2], (b"cache-control", b"public, max-age=3600")]
    return reply


@functools.cache
def _swagger() -> Path:
    """Swagger UI's folder in its installed package, looked up on the first asset served."""
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def console_routes(
    console: Console, public: list[Route], declared: Iterable[openapi.Described]
) -> list[Route]:
    """Every console route; `public` and `declared` are the table's routes and their
    declarations, from which `/openapi.json` is generated."""
    auth = AuthPages(console)
    client = ClientPages(console)
    ops = OperatorPages(console)
    declared = list(declared)
    own_static = frozenset(p.name for p in STATIC.iterdir() if p.is_file())

    async def spec(req: Request) -> Response:
        doc = openapi.document(public, declared, base_url(req))
        return Response(orjson.dumps(doc), 200, [(b"content-type", b"application/json")])

    async def static(req: Request) -> FileResponse:
        return _asset(STATIC, req.params["name"], own_static)

    async def swagger_asset(req: Request) -> FileResponse:
        return _asset(_swagger(), req.params["name"], SWAGGER_FILES)

    async def reference(req: Request, session: Session) -> Response:
        models = sorted(console.svc.catalog.models.items())
        return console.render(
            req,
            "reference.html",
            session,
            base=base_url(req),
            chat_models=[name for name, entry in models if entry.kind == Kind.CHAT],
            embed_models=[name for name, entry in models if entry.kind == Kind.EMBEDDINGS],
        )

    async def admin_home(req: Request, session: Session) -> Response:
        return redirect("/console/admin/accounts")

    async def to_console(req: Request) -> Response:
        return redirect("/console")

    def page(path: str, method: str, fn: PageFn, operator: bool = False) -> Route:
        return _route(path, method, guarded(console, fn, operator=operator))

    def _route(path: str, method: str, handler: Handler) -> Route:
        """A console route: never metered, no CORS, not in the public document."""
        return Route(
            path, frozenset({method}), caught(console, handler), "admin", None, Visibility.CONSOLE
        )

    client_pages = [
        page("/console", "GET", client.dashboard),
        page("/console/account", "POST", client.switch_account),
        page("/console/keys", "GET", client.keys),
        page("/console/keys", "POST", client.create_key),
        page("/console/keys/{key_id}", "POST", client.edit_key),
        page("/console/keys/{key_id}/revoke", "POST", client.revoke_key),
        page("/console/usage", "GET", client.usage),
        page("/console/usage.csv", "GET", client.usage_csv),
        page("/console/topup", "GET", client.topup),
        page("/console/topup", "POST", client.redeem),
        page("/console/playground", "GET", client.playground),
        page("/console/api/playground-key", "POST", client.playground_key),
        page("/console/reference", "GET", reference),
        page("/console/password", "GET", auth.password_page),
        page("/console/password", "POST", auth.change_password),
    ]
    a = "/console/admin"
    operator_pages = [
        page(a, "GET", admin_home, True),
        page(f"{a}/accounts", "GET", ops.accounts, True),
        page(f"{a}/accounts", "POST", ops.create_account, True),
        page(f"{a}/accounts/{{account_id}}", "GET", ops.account, True),
        page(f"{a}/accounts/{{account_id}}/grant", "POST", ops.grant, True),
        page(f"{a}/accounts/{{account_id}}/keys", "POST", ops.create_key, True),
        page(f"{a}/accounts/{{account_id}}/members", "POST", ops.add_member, True),
        page(
            f"{a}/accounts/{{account_id}}/members/{{user_id}}/remove",
            "POST",
            ops.remove_member,
            True,
        ),
        page(f"{a}/keys/{{key_id}}/revoke", "POST", ops.revoke_key, True),
        page(f"{a}/users", "GET", ops.users, True),
        page(f"{a}/users", "POST", ops.create_user, True),
        page(f"{a}/users/{{user_id}}/reset", "POST", ops.reset_link, True),
        page(f"{a}/users/{{user_id}}/disable", "POST", ops.disable_user, True),
        page(f"{a}/users/{{user_id}}/operator", "POST", ops.set_operator, True),
        page(f"{a}/codes", "GET", ops.codes, True),
        page(f"{a}/codes", "POST", ops.create_code, True),
        page(f"{a}/codes/{{code_id}}", "GET", ops.code, True),
        page(f"{a}/codes/{{code_id}}/revoke", "POST", ops.revoke_code, True),
        page(f"{a}/prices", "GET", ops.prices, True),
        page(f"{a}/prices/{{model:path}}", "POST", ops.set_price, True),
        page(f"{a}/prices-reset/{{model:path}}", "POST", ops.delete_price, True),
        page(f"{a}/plans", "POST", ops.set_plan, True),
        page(f"{a}/plans/{{name}}/delete", "POST", ops.delete_plan, True),
        page(f"{a}/routing", "GET", ops.routing, True),
        page(f"{a}/routing/reset", "POST", ops.routing_reset, True),
        page(f"{a}/usage", "GET", ops.usage, True),
        page(f"{a}/audit", "GET", ops.audit, True),
    ]
    document = Route(
        "/openapi.json",
        frozenset({"GET"}),
        spec,
        "openai",
        None,
        Visibility.CONSOLE,
        "The public OpenAPI document.",
    )
    if not console.config.enabled:
        return [document]
    return [
        document,
        _route("/console/", "GET", to_console),
        _route("/console/static/{name}", "GET", static),
        _route("/console/swagger/{name}", "GET", swagger_asset),
        _route("/console/signin", "GET", auth.signin_page),
        _route("/console/signin", "POST", auth.signin),
        _route("/console/signup", "GET", auth.signup_page),
        _route("/console/signup", "POST", auth.signup),
        _route("/console/signout", "POST", auth.signout),
        _route("/console/reset", "GET", auth.reset_page),
        _route("/console/reset", "POST", auth.reset),
        *client_pages,
        *operator_pages,
    ]
