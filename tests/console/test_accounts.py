"""Accounts in the console: sign-up modes (open, invite-only, closed), an operator's reset
link, changing a password, signing out (which revokes the playground's key), and switching
between the accounts a user belongs to."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from console_ui import (
    PASSWORD,
    email,
    form_token,
    http_operator,
    http_sign_up,
    make_operator,
    sign_in,
    sign_up,
)
from harness import Gateway, Sim, start_gateway, stop
from playwright.sync_api import Browser, Page, expect

Http = Callable[..., httpx.Client]
NEW_PASSWORD = "another long secret"


def signup_form(client: httpx.Client, **fields: str) -> httpx.Response:
    token = form_token(client.get("/console/signin").text)
    data = {"csrf": token, "email": email(), "password": PASSWORD, "password2": PASSWORD}
    return client.post("/console/signup", data={**data, **fields})


@pytest.fixture
def invite_gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(
        sim.url,
        tmp_path_factory.mktemp("invite"),
        sections='\n[console]\nsignup = "invite"\ninvite_code = "let-me-in-please"\n',
    )
    yield gw
    stop(gw.proc)


def test_invite_only_signup(invite_gw: Gateway) -> None:
    with httpx.Client(base_url=invite_gw.url, timeout=10) as client:
        refused = signup_form(client, invite="wrong-code-123")
        assert refused.status_code == 422
        assert "invitation code is not valid" in refused.text
        made = signup_form(client, invite="let-me-in-please")
        assert made.status_code == 303 and made.headers["location"] == "/console"
        dashboard = client.get("/console")
        assert dashboard.status_code == 200
        assert 'id="balance">$0.000000<' in dashboard.text  # no sign-up credits configured


def test_closed_signup_on_the_default_config(gateway: Gateway) -> None:
    address = email()
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        page = client.get("/console/signup")
        assert page.status_code == 403
        assert "Sign-up is closed" in page.text
        assert signup_form(client, email=address).status_code == 403
    assert gateway.admin("GET", "/users", params={"email": address})["data"] == []


def test_operator_reset_link_and_password_change(
    browser: Browser, page: Page, console_gw: Gateway
) -> None:
    address = sign_up(page, name="Forgetful")
    operator = browser.new_context(base_url=console_gw.url)
    op = operator.new_page()
    try:
        make_operator(console_gw, op)
        op.goto("/console/admin/users")
        op.locator("tr", has_text=address).get_by_role("button", name="Reset link").click()
        link = op.locator("#secret-value").input_value()
    finally:
        operator.close()
    assert re.fullmatch(rf"{re.escape(console_gw.url)}/console/reset#[\w-]+", link)

    fresh = browser.new_context(base_url=console_gw.url)
    visitor = fresh.new_page()
    requested: list[str] = []
    visitor.on("request", lambda r: requested.append(r.url))
    try:
        visitor.goto(link)
        visitor.locator("#password").fill(NEW_PASSWORD)
        visitor.locator("#password2").fill(NEW_PASSWORD)
        visitor.get_by_role("button", name="Set password and sign in").click()
        visitor.wait_for_url("**/console")
        assert "#" not in visitor.url
        token = link.rsplit("#", 1)[1]
        assert not [u for u in requested if token in u]  # never sent in a URL
        visitor.goto(link)  # a link works once
        visitor.locator("#password").fill("yet another secret")
        visitor.locator("#password2").fill("yet another secret")
        visitor.get_by_role("button", name="Set password and sign in").click()
        expect(visitor.get_by_role("alert")).to_contain_text("not valid")
    finally:
        fresh.close()

    # The reset ended the old session; the old password no longer works, the new one does.
    page.goto("/console/keys")
    page.wait_for_url("**/console/signin?next=*")
    sign_in(page, address, PASSWORD)
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    sign_in(page, address, NEW_PASSWORD)
    page.wait_for_url("**/console")

    page.goto("/console/password")
    page.get_by_label("Current password").fill(NEW_PASSWORD)
    page.locator("#password").fill(PASSWORD)
    page.locator("#password2").fill(PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_have_text("Your password was changed.")


def test_sign_out_revokes_the_playground_key(console_gw: Gateway, http: Http) -> None:
    client, token = http_sign_up(http)
    key = client.post("/console/api/playground-key", headers={"x-csrf-token": token}).json()
    models = f"{console_gw.url}/v1/models"
    auth = {"authorization": f"Bearer {key['key']}"}
    assert httpx.get(models, headers=auth, timeout=10).status_code == 200
    # A new playground key replaces (and revokes) the session's previous one.
    second = client.post("/console/api/playground-key", headers={"x-csrf-token": token}).json()
    assert httpx.get(models, headers=auth, timeout=10).status_code == 401
    out = client.post("/console/signout", data={"csrf": token})
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    auth2 = {"authorization": f"Bearer {second['key']}"}
    assert httpx.get(models, headers=auth2, timeout=10).status_code == 401
    assert client.get("/console/keys").status_code == 303  # signed out


def test_a_member_of_two_accounts_switches_between_them(console_gw: Gateway, http: Http) -> None:
    alice, _ = http_sign_up(http, "Alpha Team")
    bob, bob_token = http_sign_up(http, "Beta Team")
    bob_email = re.search(
        r'href="/console/password" title="Change password">([^<]+)<', bob.get("/console").text
    )
    assert bob_email
    alpha = next(
        a["id"] for a in console_gw.admin("GET", "/accounts")["data"] if a["name"] == "Alpha Team"
    )
    op, op_token = http_operator(http, console_gw)
    added = op.post(
        f"/console/admin/accounts/{alpha}/members",
        data={"csrf": op_token, "email": bob_email.group(1), "role": "member"},
    )
    assert added.status_code == 303
    page = bob.get("/console").text
    assert "<h1>Beta Team</h1>" in page and 'id="account-switch"' in page
    switched = bob.post("/console/account", data={"csrf": bob_token, "account_id": alpha})
    assert switched.status_code == 303
    assert "<h1>Alpha Team</h1>" in bob.get("/console").text
    # Nobody switches to an account they are not a member of.
    carol, carol_token = http_sign_up(http, "Gamma Team")
    refused = carol.post("/console/account", data={"csrf": carol_token, "account_id": alpha})
    assert refused.status_code == 404
    assert "<h1>Gamma Team</h1>" in carol.get("/console").text
    assert 'id="account-switch"' not in alice.get("/console").text
