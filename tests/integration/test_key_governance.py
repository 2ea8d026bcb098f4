"""Key restrictions and spend limits through a running gateway."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from harness import ADMIN_KEY, Gateway, ledger_consistent

BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


def _chat(
    gw: Gateway, key: str, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={**BODY, **body},
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        timeout=10,
    )


def _key_id(gw: Gateway, account: str) -> str:
    return str(gw.admin("GET", f"/accounts/{account}/keys")["data"][0]["id"])


@pytest.mark.parametrize(
    ("rules", "headers", "code"),
    [
        ({"ips": ["203.0.113.0/24"]}, {}, "ip_not_allowed"),
        (
            {"origins": ["https://app.example.com"]},
            {"origin": "https://evil.example"},
            "origin_not_allowed",
        ),
        ({"hours": {"days": ["sun"], "from": "00:00", "to": "00:01"}}, {}, "outside_time_window"),
    ],
)
def test_restrictions_refuse_with_403(
    gateway: Gateway, rules: dict[str, Any], headers: dict[str, str], code: str
) -> None:
    account, key = gateway.account(1_000_000)
    gateway.admin("PATCH", f"/keys/{_key_id(gateway, account)}", json={"restrictions": rules})
    r = _chat(gateway, key, headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == code
    assert gateway.account_state(account)["open_holds"] == 0
    assert [row["kind"] for row in gateway.ledger(account)] == ["grant"]


def test_allowed_ip_and_origin_pass(gateway: Gateway) -> None:
    account, key = gateway.account(1_000_000)
    gateway.admin(
        "PATCH",
        f"/keys/{_key_id(gateway, account)}",
        json={"restrictions": {"ips": ["127.0.0.0/8"], "origins": ["https://app.example.com"]}},
    )
    r = _chat(gateway, key, {"origin": "https://app.example.com"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"


def test_bad_restrictions_are_refused_by_the_admin_api(gateway: Gateway) -> None:
    account, _ = gateway.account(1)
    r = httpx.patch(
        f"{gateway.url}/admin/v1/keys/{_key_id(gateway, account)}",
        json={"restrictions": {"ips": ["nope"]}},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert r.status_code == 400
    assert "ips" in r.json()["error"]["message"]


def test_cors_preflight(gateway: Gateway) -> None:
    r = httpx.options(
        gateway.url + "/v1/chat/completions",
        headers={
            "origin": "https://app.example.com",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in r.headers["access-control-allow-methods"]


@pytest.mark.parametrize("scope", ["key", "account"])
def test_spend_limit_is_not_the_balance(gateway: Gateway, scope: str) -> None:
    account, key = gateway.account(10_000_000)
    limit = {"spend_limit": 2000, "spend_period": "daily"}
    if scope == "key":
        gateway.admin("PATCH", f"/keys/{_key_id(gateway, account)}", json=limit)
    else:
        gateway.admin("PATCH", f"/accounts/{account}", json=limit)
    # each request holds about 40 (prompt bytes) + 2 * 20 output tokens, and costs less
    results = [_chat(gateway, key) for _ in range(80)]
    codes = [r.status_code for r in results]
    assert 200 in codes and 402 in codes
    refused = next(r for r in results if r.status_code == 402)
    assert refused.json()["error"]["code"] == "spending_limit_reached"
    assert "Spending limit reached" in refused.json()["error"]["message"]
    spent = sum(int(r.headers["x-faregate-cost"]) for r in results if r.status_code == 200)
    assert spent <= 2000
    state = gateway.account_state(account)
    assert state["balance"] == 10_000_000 - spent  # the balance was never the limit
    assert state["open_holds"] == 0
    ledger_consistent(gateway, account)
    # lifting the limit lets the key spend again
    if scope == "key":
        gateway.admin(
            "PATCH",
            f"/keys/{_key_id(gateway, account)}",
            json={"spend_limit": None, "spend_period": None},
        )
    else:
        gateway.admin(
            "PATCH", f"/accounts/{account}", json={"spend_limit": None, "spend_period": None}
        )
    assert _chat(gateway, key).status_code == 200


def test_insufficient_balance_keeps_its_own_code(gateway: Gateway) -> None:
    account, key = gateway.account(10)
    gateway.admin(
        "PATCH", f"/accounts/{account}", json={"spend_limit": 10**9, "spend_period": "monthly"}
    )
    r = _chat(gateway, key)
    assert r.status_code == 402
    assert r.json()["error"]["code"] == "insufficient_balance"
