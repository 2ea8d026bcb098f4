"""Keys made in the console hold as the gateway enforces them: the model allow-list, IP
ranges, the spend limit and expiry are the key's own; an edit changes them at once, keeps
the restrictions set elsewhere, and no one edits another account's key."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from console_ui import http_sign_up
from harness import Gateway

Http = Callable[..., httpx.Client]


def chat(gw: Gateway, key: str, model: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        timeout=20,
    )


def test_key_settings_apply_and_edits_change_them(console_gw: Gateway, http: Http) -> None:
    client, token = http_sign_up(http)
    made = client.post(
        "/console/keys",
        data={
            "csrf": token,
            "name": "limited",
            "models": "sim-small",
            "ips": "203.0.113.0/24",
            "expires": "2099-12-31",
            "spend_limit": "1.5",
            "spend_period": "weekly",
        },
    )
    assert made.status_code == 201
    key = re.search(r'value="(fg-[^"]+)"', made.text)
    key_id = re.findall(r'data-key="([^"]+)"', made.text)[-1]
    assert key
    record = next(
        k
        for k in console_gw.admin("GET", f"/accounts/{_account(console_gw, key_id)}/keys")["data"]
        if k["id"] == key_id
    )
    assert record["allowed_models"] == ["sim-small"]
    assert record["restrictions"] == {"ips": ["203.0.113.0/24"]}
    assert (record["spend_limit"], record["spend_period"]) == (1_500_000, "weekly")
    assert record["expires_at"] == 4102444800000  # the end of 2099-12-31, UTC
    assert chat(console_gw, key.group(1), "sim-small").status_code == 403  # not from 127.0.0.1

    # Origins set through the admin API survive an edit of the IP ranges.
    console_gw.admin(
        "PATCH",
        f"/keys/{key_id}",
        json={"restrictions": {"ips": ["203.0.113.0/24"], "origins": ["https://a.example"]}},
    )
    page = client.get("/console/keys").text
    assert 'value="2099-12-31"' in page and 'value="1.5"' in page
    edited = client.post(
        f"/console/keys/{key_id}",
        data={"csrf": token, "name": "renamed", "models": "sim-small", "ips": ""},
    )
    assert edited.status_code == 200 and "The key renamed was changed." in edited.text
    origin = {"authorization": f"Bearer {key.group(1)}", "origin": "https://a.example"}
    reply = httpx.post(
        f"{console_gw.url}/v1/chat/completions",
        headers=origin,
        json={"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]},
        timeout=20,
    )
    assert reply.status_code == 200
    assert chat(console_gw, key.group(1), "sim-small").status_code == 403  # no Origin
    wrong_model = httpx.post(
        f"{console_gw.url}/v1/chat/completions",
        headers=origin,
        json={"model": "sim-large", "messages": [{"role": "user", "content": "hi"}]},
        timeout=20,
    )
    assert wrong_model.status_code == 403

    refused = client.post(
        f"/console/keys/{key_id}", data={"csrf": token, "models": "no-such-model"}
    )
    assert refused.status_code == 422 and "unknown model" in refused.text

    other, other_token = http_sign_up(http)
    stolen = other.post(f"/console/keys/{key_id}", data={"csrf": other_token, "name": "mine"})
    assert stolen.status_code == 404
    assert "renamed" in client.get("/console/keys").text


def _account(gw: Gateway, key_id: str) -> str:
    for account in gw.admin("GET", "/accounts")["data"]:
        keys = gw.admin("GET", f"/accounts/{account['id']}/keys")["data"]
        if any(k["id"] == key_id for k in keys):
            return str(account["id"])
    raise AssertionError(key_id)
