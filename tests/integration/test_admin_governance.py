"""Users, members, redemption codes and the audit log through a running gateway (SQLite and
PostgreSQL): codes credit once per account, refusals come in the OpenAI error envelope, and
every admin action is in the audit log."""

from __future__ import annotations

import time
from typing import Any

import httpx
from harness import ADMIN_KEY, Gateway

ENV_ACTOR = "admin:env"  # the harness authenticates with FAREGATE_ADMIN_KEY


def admin_raw(gw: Gateway, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{gw.url}/admin/v1{path}",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
        **kw,
    )


def redeem(gw: Gateway, key: str, code: str, path: str = "/api/client/redeem") -> httpx.Response:
    return httpx.post(
        f"{gw.url}{path}", headers={"authorization": f"Bearer {key}"}, json={"code": code}
    )


def audit(gw: Gateway, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return list(gw.admin("GET", f"/audit?limit=1000&{query}")["data"])


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    return dict(body["error"])


def test_users_and_members(any_gateway: Gateway) -> None:
    gw = any_gateway
    since = str(int(time.time() * 1000))
    email = f"ada-{time.time_ns()}@example.com"
    ada = gw.admin("POST", "/users", json={"email": email, "name": "Ada"})
    assert ada["email"] == email and ada["id"].startswith("user_")
    assert error_of(admin_raw(gw, "POST", "/users", json={"email": email.upper()}), 409)
    assert error_of(admin_raw(gw, "POST", "/users", json={"email": "x", "bogus": 1}), 422)
    assert gw.admin("GET", f"/users?email={email}")["data"][0]["id"] == ada["id"]
    account, key = gw.account(1_000_000)
    key_id = gw.admin("GET", f"/accounts/{account}/keys")["data"][0]["id"]

    added = gw.admin(
        "POST", f"/accounts/{account}/members", json={"user_id": ada["id"], "role": "owner"}
    )
    assert added["role"] == "owner"
    bad_role = admin_raw(
        gw, "POST", f"/accounts/{account}/members", json={"user_id": ada["id"], "role": "boss"}
    )
    assert error_of(bad_role, 422)["code"] == "admin_action_refused"
    members = gw.admin("GET", f"/accounts/{account}/members")["data"]
    assert [(m["user_id"], m["role"]) for m in members] == [(ada["id"], "owner")]
    assert gw.admin("GET", f"/users/{ada['id']}/accounts")["data"][0]["account_id"] == account
    assert gw.admin("GET", f"/users/{ada['id']}")["accounts"][0]["role"] == "owner"
    assert gw.admin("POST", f"/keys/{key_id}/user", json={"user_id": ada["id"]})["user_id"]
    assert error_of(admin_raw(gw, "DELETE", f"/accounts/{account}/members/{ada['id']}"), 409)
    assert error_of(admin_raw(gw, "GET", "/users/user_nope"), 404)["type"] == "not_found_error"

    # Disabling the user revokes the key that names them, at once.
    assert httpx.get(f"{gw.url}/api/client/balance", headers={"authorization": f"Bearer {key}"})
    disabled = gw.admin("POST", f"/users/{ada['id']}/disable")
    assert disabled["disabled_at"] and disabled["keys_revoked"] == 1
    r = httpx.get(f"{gw.url}/api/client/balance", headers={"authorization": f"Bearer {key}"})
    assert error_of(r, 401)["code"] == "revoked_api_key"
    removed = gw.admin("DELETE", f"/accounts/{account}/members/{ada['id']}")
    assert removed["removed"] is True

    done = {(r["action"], r["target"]) for r in audit(gw, actor=ENV_ACTOR, since=since)}
    assert {
        ("user.create", ada["id"]),
        ("member.add", account),
        ("key.set_user", key_id),
        ("user.disable", ada["id"]),
        ("member.remove", account),
    } <= done
    assert ("member.add", account) in {(r["action"], r["target"]) for r in audit(gw)}
    refused = [r for r in audit(gw, since=since) if r["action"] == "user.create"]
    assert len(refused) == 1  # the refused duplicate left no audit row


def test_codes_credit_once_per_account(any_gateway: Gateway) -> None:
    gw = any_gateway
    a, key_a = gw.account(0)
    b, key_b = gw.account(0)
    c, key_c = gw.account(0)
    made = gw.admin("POST", "/codes", json={"amount": 250_000, "max_uses": 2})
    code, code_id = made["code"], made["id"]
    assert made["prefix"] == code[:10] and made["uses"] == 0
    listed = gw.admin("GET", "/codes?limit=1000")["data"]
    assert code_id in {r["id"] for r in listed}
    assert all("code" not in r and "code_hash" not in r for r in listed)  # shown once only

    done = redeem(gw, key_a, code)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["code_id"], body["amount"], body["balance"]) == (code_id, 250_000, 250_000)
    assert error_of(redeem(gw, key_a, code), 409)["code"] == "code_already_redeemed"
    assert redeem(gw, key_b, code, "/v1/client/redeem").status_code == 200
    assert error_of(redeem(gw, key_c, code), 409)["code"] == "code_used_up"
    assert error_of(redeem(gw, key_c, "fgc-unknown"), 404)["code"] == "invalid_code"
    assert error_of(redeem(gw, "fg-bad", code), 401)
    r = httpx.post(
        f"{gw.url}/api/client/redeem", headers={"authorization": f"Bearer {key_c}"}, json={}
    )
    assert error_of(r, 422)["param"] == "code"

    assert gw.account_state(a)["balance"] == 250_000
    assert gw.account_state(c)["balance"] == 0
    grants = [r for r in gw.ledger(a) if r["kind"] == "grant"]
    assert [(g["amount"], g["note"]) for g in grants] == [(250_000, f"redemption code {code_id}")]
    seen = gw.admin("GET", f"/codes/{code_id}")
    assert seen["uses"] == 2 and {x["account_id"] for x in seen["redemptions"]} == {a, b}

    other = gw.admin("POST", "/codes", json={"amount": 1_000, "max_uses": 10})
    assert gw.admin("POST", f"/codes/{other['id']}/revoke")["revoked_at"]
    assert error_of(redeem(gw, key_c, other["code"]), 409)["code"] == "code_revoked"
    third = gw.admin("POST", "/codes", json={"amount": 3_000})
    admin_done = gw.admin("POST", f"/accounts/{c}/redeem", json={"code": third["code"]})
    assert admin_done["balance"] == 3_000
    bad = admin_raw(gw, "POST", "/codes", json={"amount": 5, "max_uses": 0})
    assert error_of(bad, 422)

    actions = {(r["actor"], r["action"], r["target"]) for r in audit(gw)}
    key_a_id = gw.admin("GET", f"/accounts/{a}/keys")["data"][0]["id"]
    assert {
        (ENV_ACTOR, "code.create", code_id),
        (f"key:{key_a_id}", "code.redeem", code_id),
        (ENV_ACTOR, "code.revoke", other["id"]),
        (ENV_ACTOR, "code.redeem", third["id"]),
    } <= actions
    redeemed = audit(gw, action="code.redeem", target=code_id)
    assert sorted(r["detail"]["account_id"] for r in redeemed) == sorted([a, b])


def test_admin_routes_need_the_admin_key(gateway: Gateway) -> None:
    for method, path in (("GET", "/users"), ("POST", "/codes"), ("GET", "/audit")):
        r = httpx.request(method, f"{gateway.url}/admin/v1{path}", json={})
        assert error_of(r, 401)["type"] == "authentication_error"
        r = httpx.request(
            method,
            f"{gateway.url}/admin/v1{path}",
            json={},
            headers={"authorization": "Bearer fga-wrong"},
        )
        assert r.status_code == 401


def test_existing_admin_actions_are_audited(any_gateway: Gateway) -> None:
    """Needs the audit lines in faregate/api/admin.py (see the governance report)."""
    gw = any_gateway
    account, _ = gw.account(1_000)
    key = gw.admin("POST", f"/accounts/{account}/keys", json={"name": "k2"})
    gw.admin("POST", f"/accounts/{account}/credits", json={"amount": 500, "note": "top-up"})
    gw.admin("PATCH", f"/accounts/{account}", json={"spend_limit": 10_000, "spend_period": "daily"})
    gw.admin("PATCH", f"/keys/{key['id']}", json={"spend_limit": 5_000, "spend_period": "daily"})
    gw.admin("POST", f"/keys/{key['id']}/revoke")
    gw.reset_routing()
    gw.admin("POST", "/reload")
    done = {(r["action"], r["target"]) for r in audit(gw, actor=ENV_ACTOR)}
    assert {
        ("account.create", account),
        ("credits.grant", account),
        ("key.create", key["id"]),
        ("account.update", account),
        ("key.update", key["id"]),
        ("key.revoke", key["id"]),
        ("routing.reset", None),
        ("config.reload", None),
    } <= done
    assert [r["detail"]["amount"] for r in audit(gw, action="credits.grant", target=account)] == [
        500
    ]
    created = audit(gw, action="account.create", target=account)
    assert [r["detail"]["credits"] for r in created] == [1_000]
    changed = audit(gw, action="key.update", target=key["id"])
    assert changed[0]["detail"] == {"spend_limit": 5_000, "spend_period": "daily"}
