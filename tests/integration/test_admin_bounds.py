"""Amounts at the edges of the one range through a running gateway (SQLite and PostgreSQL):
refused with a 422 naming the field and nothing written, no balance past the bound, no
grant applied twice, and charges against the largest balance stay integers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from harness import ADMIN_KEY, Gateway, ledger_consistent

MAX = 10**15  # bounds.MAX_AMOUNT, as a client reads it in the docs


def _admin(gw: Gateway, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.request(
        method,
        f"{gw.url}/admin/v1{path}",
        json=body,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )


def _refused(r: httpx.Response, status: int, param: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = dict(r.json()["error"])
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    return error


@pytest.mark.parametrize("credits", [2**63, 2**63 - 1, 2**64, MAX + 1, -1])
def test_account_credits_outside_the_range(any_gateway: Gateway, credits: int) -> None:
    name = f"too-rich-{credits}"
    r = _admin(any_gateway, "POST", "/accounts", {"name": name, "credits": credits})
    _refused(r, 422, "credits")
    names = {a["name"] for a in any_gateway.admin("GET", "/accounts")["data"]}
    assert name not in names


def test_grants_outside_the_range_and_past_the_bound(any_gateway: Gateway) -> None:
    gw = any_gateway
    account, _ = gw.account(MAX)
    for amount in (2**63, 2**63 - 1, -(2**63), MAX + 1):
        _refused(
            _admin(gw, "POST", f"/accounts/{account}/credits", {"amount": amount}), 422, "amount"
        )
    # 2**63 - 1 plus 1 used to make a float balance and then a 500 after commit: now the
    # grant is refused before anything is written, every time it is retried.
    for _ in range(2):
        r = _admin(gw, "POST", f"/accounts/{account}/credits", {"amount": 1})
        assert r.status_code == 409 and "above" in r.json()["error"]["message"], r.text
    state = gw.account_state(account)
    assert state["balance"] == MAX and isinstance(state["balance"], int)
    assert [row["amount"] for row in gw.ledger(account)] == [MAX]
    done = gw.admin("POST", f"/accounts/{account}/credits", json={"amount": -MAX})
    assert done == {"account_id": account, "balance": 0}


def test_codes_and_spend_limits_outside_the_range(any_gateway: Gateway) -> None:
    gw = any_gateway
    _refused(_admin(gw, "POST", "/codes", {"amount": 2**63}), 422, "amount")
    _refused(_admin(gw, "POST", "/codes", {"amount": 1, "max_uses": 2**40}), 422, "max_uses")
    account, _ = gw.account(0)
    for limit in (2**63, MAX + 1, True):
        body = {"spend_limit": limit, "spend_period": "daily"}
        _refused(_admin(gw, "PATCH", f"/accounts/{account}", body), 422, "spend_limit")
    key_id = gw.admin("GET", f"/accounts/{account}/keys")["data"][0]["id"]
    body = {"spend_limit": 2**63, "spend_period": "daily"}
    _refused(_admin(gw, "PATCH", f"/keys/{key_id}", body), 422, "spend_limit")
    assert gw.account_state(account)["spend_limit"] is None


def test_times_outside_the_range(any_gateway: Gateway) -> None:
    """Not money, but a BIGINT all the same: 2**63 used to answer 500."""
    gw = any_gateway
    account, _ = gw.account(0)
    keys = f"/accounts/{account}/keys"
    _refused(_admin(gw, "POST", keys, {"expires_at": 2**63}), 422, "expires_at")
    key_id = gw.admin("GET", keys)["data"][0]["id"]
    _refused(_admin(gw, "PATCH", f"/keys/{key_id}", {"expires_at": 2**63}), 422, "expires_at")
    body = {"amount": 1, "expires_at": 2**63}
    _refused(_admin(gw, "POST", "/codes", body), 422, "expires_at")
    assert len(gw.admin("GET", keys)["data"]) == 1


def test_a_redemption_past_the_bound_is_refused(any_gateway: Gateway) -> None:
    gw = any_gateway
    account, _ = gw.account(MAX)
    code = gw.admin("POST", "/codes", json={"amount": 1})
    r = _admin(gw, "POST", f"/accounts/{account}/redeem", {"code": code["code"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "balance_too_large", r.text
    assert gw.admin("GET", f"/codes/{code['id']}")["uses"] == 0
    assert gw.account_state(account)["balance"] == MAX


def test_charges_against_the_largest_balance_stay_integers(any_gateway: Gateway) -> None:
    gw = any_gateway
    account, key = gw.account(MAX)
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "sim-large", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    cost = r.json()["usage"]["cost_micro_credits"]
    state = gw.account_state(account)
    assert isinstance(state["balance"], int) and state["balance"] == MAX - cost
    assert all(isinstance(row["amount"], int) for row in gw.ledger(account))
    ledger_consistent(gw, account)
