"""The console's defences: CSRF tokens, cookie flags, sign-in throttling, inert XSS payloads,
operator pages refused to clients, and no reads or writes across accounts."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import httpx
from console_ui import PASSWORD, form_token, http_sign_up, make_operator, sign_up
from harness import Gateway
from playwright.sync_api import Browser, Page, expect

Http = Callable[..., httpx.Client]

XSS = '<script>window.xss=1</script><img src=x onerror="window.xss=2">'


def new_key(client: httpx.Client, token: str, name: str = "k") -> tuple[str, str]:
    """(key id, key) of a key created through the keys form."""
    page = client.post("/console/keys", data={"csrf": token, "name": name})
    assert page.status_code == 201, page.text
    key = re.search(r'value="(fg-[^"]+)"', page.text)
    assert key
    key_id = re.findall(r'data-key="([^"]+)"', page.text)[-1]
    return key_id, key.group(1)


def test_forms_without_the_csrf_token_are_refused(console_gw: Gateway, http: Http) -> None:
    client, token = http_sign_up(http)
    refused = client.post("/console/keys", data={"name": "no-token"})
    assert refused.status_code == 403
    assert "security token" in refused.text
    wrong = client.post("/console/keys", data={"name": "wrong", "csrf": token[::-1]})
    assert wrong.status_code == 403
    assert 'data-key="' not in client.get("/console/keys").text  # nothing was created
    assert client.post("/console/api/playground-key").status_code == 403
    ok = client.post("/console/api/playground-key", headers={"x-csrf-token": token})
    assert ok.status_code == 200 and ok.json()["key"].startswith("fg-")
    # Signed-out forms carry a token matched by a cookie.
    fresh = http()
    no_cookie = fresh.post(
        "/console/signup",
        data={"csrf": "x" * 43, "email": "a@example.com", "password": PASSWORD},
    )
    assert no_cookie.status_code == 403


def test_cookie_flags_and_security_headers(console_gw: Gateway, http: Http) -> None:
    client = http()
    page = client.get("/console/signin")
    csp = page.headers["content-security-policy"]
    assert (
        "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # every script is a file
    reply = client.post(
        "/console/signup",
        data={
            "csrf": form_token(client.get("/console/signup").text),
            "email": f"c-{secrets.token_hex(4)}@example.com",
            "password": PASSWORD,
            "password2": PASSWORD,
        },
    )
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith("fg_console=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback
    # Behind a trusted proxy that terminated TLS, the cookie is Secure.
    tls = http(headers={"x-forwarded-proto": "https"})
    signin = tls.get("/console/signin")
    assert "Secure" in signin.headers["set-cookie"]
    # Nothing secret in the URL or the page: the password never comes back.
    assert PASSWORD not in reply.text and PASSWORD not in str(reply.headers)


def test_wrong_passwords_are_throttled(console_gw: Gateway, http: Http) -> None:
    address = f"198.51.100.{secrets.randbelow(200) + 1}"
    outsider = http(headers={"x-forwarded-for": address})
    token = form_token(outsider.get("/console/signin").text)
    statuses = []
    for _ in range(10):
        reply = outsider.post(
            "/console/signin",
            data={"csrf": token, "email": "nobody@example.com", "password": "wrong password"},
        )
        statuses.append(reply.status_code)
        if reply.status_code == 429:
            assert int(reply.headers["retry-after"]) >= 1
            assert "Too many failed sign-ins" in reply.text
            break
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429
    audit = console_gw.admin("GET", "/audit", params={"actor": f"addr:{address}"})["data"]
    assert {row["action"] for row in audit} == {"console.signin_failed"}
    assert len(audit) == len(statuses) - 1
    assert all("wrong password" not in str(row) for row in audit)


def test_operator_pages_refused_to_clients_and_signed_out_visitors(
    console_gw: Gateway, http: Http
) -> None:
    client, token = http_sign_up(http)
    for path in ("/console/admin", "/console/admin/accounts", "/console/admin/audit"):
        assert client.get(path).status_code == 403
    grant = client.post("/console/admin/accounts", data={"csrf": token, "name": "mine"})
    assert grant.status_code == 403
    anonymous = http()
    for path in ("/console", "/console/keys", "/console/admin/accounts"):
        reply = anonymous.get(path)
        assert reply.status_code == 303
        assert reply.headers["location"].startswith("/console/signin?next=")


def test_no_reads_or_writes_across_accounts(console_gw: Gateway, http: Http) -> None:
    alice, alice_token = http_sign_up(http, "Alice")
    bob, bob_token = http_sign_up(http, "Bob")
    bob_key_id, bob_key = new_key(bob, bob_token, "bob-key")
    call = httpx.post(
        f"{console_gw.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {bob_key}"},
        json={"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]},
        timeout=20,
    )
    assert call.status_code == 200
    revoke = alice.post(f"/console/keys/{bob_key_id}/revoke", data={"csrf": alice_token})
    assert revoke.status_code == 404
    still = httpx.get(
        f"{console_gw.url}/v1/models", headers={"authorization": f"Bearer {bob_key}"}, timeout=10
    )
    assert still.status_code == 200
    usage = alice.get("/console/usage", params={"key_id": bob_key_id})
    assert usage.status_code == 200 and "sim-small" not in usage.text.split("<tbody>")[1]
    csv = alice.get("/console/usage.csv", params={"key_id": bob_key_id})
    assert csv.text.strip().count("\n") == 0  # the header only
    assert "bob-key" not in alice.get("/console/keys").text
    assert "Bob" not in alice.get("/console").text


def test_xss_payloads_are_rendered_inert(browser: Browser, page: Page, console_gw: Gateway) -> None:
    sign_up(page, name=XSS)
    expect(page.locator("h1")).to_have_text(XSS)
    page.goto("/console/keys")
    page.get_by_label("Name").fill(XSS)
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#keys")).to_contain_text(XSS)
    page.goto("/console/usage?model=" + "%3Cscript%3Ewindow.xss%3D3%3C%2Fscript%3E")
    assert page.evaluate("typeof window.xss") == "undefined"
    operator = browser.new_context(base_url=console_gw.url)
    op = operator.new_page()
    try:
        make_operator(console_gw, op)
        expect(op.locator("#accounts")).to_contain_text(XSS)
        op.get_by_role("link", name=XSS).first.click()
        expect(op.locator("h1")).to_have_text(XSS)
        expect(op.locator("#keys")).to_contain_text(XSS)
        op.goto("/console/admin/audit")
        expect(op.locator("#audit")).to_contain_text("window.xss=1")
        op.goto("/console/admin/users")
        assert op.evaluate("typeof window.xss") == "undefined"
    finally:
        operator.close()
    assert page.evaluate("typeof window.xss") == "undefined"
