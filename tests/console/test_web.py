"""The console's small parts, without a browser: forms under caps, redirects kept on the
console, cookies' flags, CSV cells, amounts and dates typed in forms, the daily chart."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from unittest.mock import MagicMock

import pytest

from faregate.admin.ops import AdminError
from faregate.config import Config
from faregate.console import reports, web
from faregate.errors import BadRequest, PayloadTooLarge
from faregate.http.request import Request


def request(body: bytes = b"", headers: dict[str, str] | None = None, **scope: Any) -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"headers": raw, "path": "/console", "method": "POST", **scope}, receive)


FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_a_form_is_read_with_caps() -> None:
    fields = asyncio.run(web.form(request(b"a=1&b=%3Cx%3E&a=2", FORM)))
    assert fields == {"a": "2", "b": "<x>"}
    with pytest.raises(BadRequest):
        asyncio.run(web.form(request(b"a=1", {"content-type": "text/plain"})))
    with pytest.raises(BadRequest):
        asyncio.run(web.form(request("&".join(f"f{i}=1" for i in range(100)).encode(), FORM)))
    with pytest.raises(PayloadTooLarge):
        asyncio.run(web.form(request(b"a=" + b"x" * (web.MAX_FORM_BYTES + 1), FORM)))
    with pytest.raises(BadRequest):
        asyncio.run(web.form(request(b"a=%FF%FE", FORM)))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/console/keys?x=1", "/console/keys?x=1"),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/console//evil.example", "/console"),
        ("/console\\..\\x", "/console"),
        ("/admin/v1/accounts", "/console"),
        (None, "/console"),
    ],
)
def test_after_sign_in_only_console_paths(given: str | None, expected: str) -> None:
    assert web.safe_next(given) == expected


def console(mode: str = "auto", proxies: list[str] | None = None) -> web.Console:
    config = Config.model_validate(
        {"console": {"cookie_secure": mode}, "server": {"trusted_proxies": proxies or []}}
    )
    svc = MagicMock()
    svc.config = config
    return web.Console(svc, MagicMock(), MagicMock())


def test_cookie_flags() -> None:
    plain = request(client=("10.0.0.1", 1), scheme="http")
    name, value = console().cookie(plain, web.SESSION_COOKIE, "tok", 60)
    assert name == b"set-cookie"
    assert value == b"fg_console=tok; Path=/console; Max-Age=60; HttpOnly; SameSite=Lax"
    tls = request(client=("10.0.0.1", 1), scheme="https")
    assert console().cookie(tls, web.CSRF_COOKIE, "t", 1)[1].endswith(b"SameSite=Strict; Secure")
    forwarded = request(
        headers={"x-forwarded-proto": "https"}, client=("10.0.0.1", 1), scheme="http"
    )
    assert b"Secure" not in console().cookie(forwarded, "c", "v", 1)[1]  # untrusted peer
    assert b"Secure" in console(proxies=["10.0.0.0/8"]).cookie(forwarded, "c", "v", 1)[1]
    assert b"Secure" in console("always").cookie(plain, "c", "v", 1)[1]
    assert b"Secure" not in console("never").cookie(tls, "c", "v", 1)[1]


def test_templates_escape_everything() -> None:
    env = console().templates
    out = env.from_string("{{ name }}").render(name='<script>alert("x")</script>')
    assert out == "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"


def test_csv_cells_never_start_a_formula() -> None:
    line = reports.csv_line({"at": 1, "model": "=HYPERLINK(1)", "request_id": "-x", "cost": 5})
    assert line.startswith("1,'-x,,'=HYPERLINK(1),")


def test_dollar_amounts_and_dates() -> None:
    assert reports.usd_amount("$1.25", 1_000_000, "a") == 1_250_000
    assert reports.usd_amount(" ", 1_000_000, "a") is None
    for bad in ("abc", "-1", "NaN", "Infinity", "1e10"):
        with pytest.raises(AdminError):
            reports.usd_amount(bad, 1_000_000, "a")
    end = reports.day_end_ms("2030-01-31", "d")
    assert end == int(dt.datetime(2030, 2, 1, tzinfo=dt.UTC).timestamp() * 1000)
    with pytest.raises(AdminError):
        reports.day_end_ms("31/01/2030", "d")


def test_chart_bars_are_scaled_to_the_largest_day() -> None:
    days = [dt.date(2030, 1, 1) + dt.timedelta(days=i) for i in range(3)]
    bars = reports.bars(days, {"2030-01-02": 10, "2030-01-03": 5}, str)
    assert [b.height for b in bars] == [0, 100, 50]
    assert [b.y for b in bars] == [100, 0, 50]
    assert bars[1].label == "2030-01-02: 10"
    assert reports.bars(days, {}, str)[0].height == 0


def test_a_disabled_console_serves_only_the_public_document() -> None:
    from faregate.api import routes as table
    from faregate.console.routes import console_routes

    off = console()
    off.svc.config = Config.model_validate({"console": {"enabled": False}})
    served = console_routes(off, [], table.CLIENT)
    assert [r.path for r in served] == ["/openapi.json"]
    on = console_routes(console(), [], table.CLIENT)
    assert {"/console", "/console/admin/accounts", "/console/signin"} <= {r.path for r in on}
