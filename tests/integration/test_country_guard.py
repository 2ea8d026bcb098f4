"""Country restrictions through a running gateway: a trusted proxy's header, a country
database built by the test for loopback addresses, every client protocol's envelope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from auth.test_geo import write_country_db
from harness import Gateway, Sim, ledger_consistent, start_gateway, stop

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


@pytest.fixture(scope="module")
def geo_gateway(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("geo")
    # 127.0.0.1 is the trusted proxy (and in no country); the test connects from other
    # loopback addresses to be "callers" in France and Germany.
    db = write_country_db(tmp / "countries.mmdb", {"127.0.0.2/32": "FR", "127.0.0.3/32": "DE"})
    gw = start_gateway(
        sim.url,
        tmp,
        server={"trusted_proxies": ["127.0.0.1/32"]},
        sections=f'[geo]\ndatabase = "{db}"\ncountry_header = "CF-IPCountry"\n',
    )
    yield gw
    stop(gw.proc)


def _client(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10)


def _restricted(gw: Gateway, countries: dict[str, Any], scope: str = "key") -> tuple[str, str]:
    account, key = gw.account(1_000_000)
    if scope == "key":
        key_id = gw.admin("GET", f"/accounts/{account}/keys")["data"][0]["id"]
        gw.admin("PATCH", f"/keys/{key_id}", json={"restrictions": {"countries": countries}})
    else:
        gw.admin("PATCH", f"/accounts/{account}", json={"restrictions": {"countries": countries}})
    return account, key


def _chat(gw: Gateway, key: str, source: str = "127.0.0.1", **headers: str) -> httpx.Response:
    with _client(source) as client:
        return client.post(
            gw.url + "/v1/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {key}", **headers},
        )


@pytest.mark.parametrize("scope", ["key", "account"])
def test_key_limited_to_germany(geo_gateway: Gateway, scope: str) -> None:
    gw = geo_gateway
    account, key = _restricted(gw, {"allow": ["DE"]}, scope)
    before = gw.account_state(account)["balance"]

    refused = _chat(gw, key, **{"cf-ipcountry": "US"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "country_not_allowed"
    assert "US" in refused.json()["error"]["message"]
    assert refused.headers["x-faregate-cost"] == "0"

    assert _chat(gw, key, **{"cf-ipcountry": "DE"}).status_code == 200
    # From an untrusted peer the header is ignored: the database says France.
    spoofed = _chat(gw, key, "127.0.0.2", **{"cf-ipcountry": "DE"})
    assert spoofed.status_code == 403
    assert "FR" in spoofed.json()["error"]["message"]
    # The database alone: Germany.
    assert _chat(gw, key, "127.0.0.3").status_code == 200
    # Unknown country (the proxy sent none, the database has no entry): allowed by default.
    assert _chat(gw, key).status_code == 200

    state = gw.account_state(account)
    assert state["open_holds"] == 0
    ledger = gw.ledger(account)
    assert len([e for e in ledger if e["kind"] == "hold"]) == 3  # the three allowed calls only
    assert state["balance"] < before
    ledger_consistent(gw, account)


def test_unknown_country_refused_when_the_key_says_so(geo_gateway: Gateway) -> None:
    _, key = _restricted(geo_gateway, {"block": ["FR"], "unknown": "refuse"})
    refused = _chat(geo_gateway, key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "country_not_allowed"
    assert _chat(geo_gateway, key, "127.0.0.3").status_code == 200
    assert _chat(geo_gateway, key, "127.0.0.2").status_code == 403


def test_every_client_protocol_refuses_in_its_own_envelope(geo_gateway: Gateway) -> None:
    gw = geo_gateway
    account, key = _restricted(gw, {"block": ["FR"]})
    auth = {"authorization": f"Bearer {key}"}
    with _client("127.0.0.2") as client:
        anthropic = client.post(
            gw.url + "/v1/messages",
            json={**CHAT, "model": "claude-sim"},
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        )
        assert anthropic.status_code == 403
        assert anthropic.json()["type"] == "error"
        assert anthropic.json()["error"]["type"] == "permission_error"
        assert "FR" in anthropic.json()["error"]["message"]

        gemini = client.post(
            gw.url + "/v1beta/models/gemini-2.5-flash:generateContent",
            json={"contents": [{"parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": key},
        )
        assert gemini.status_code == 403
        assert gemini.json()["error"]["status"] == "PERMISSION_DENIED"

        llmage = client.post(gw.url + "/llmage/v1/chat/completions", json=CHAT, headers=auth)
        assert llmage.status_code == 403
        assert "country" in llmage.json()["error"]

        compat = client.post(
            gw.url + "/api/v1/chat",
            json={"model": "sim-small", "message": "hi"},
            headers=auth,
        )
        assert compat.status_code == 403
        assert compat.json()["error"]["code"] == "country_not_allowed"
    assert gw.ledger(account) == [e for e in gw.ledger(account) if e["kind"] == "grant"]


def test_country_restrictions_are_validated_and_shown(geo_gateway: Gateway) -> None:
    gw = geo_gateway
    account, _ = gw.account(10)
    key_id = gw.admin("GET", f"/accounts/{account}/keys")["data"][0]["id"]
    bad = httpx.patch(
        f"{gw.url}/admin/v1/keys/{key_id}",
        json={"restrictions": {"countries": {"allow": ["Germany"]}}},
        headers={"authorization": "Bearer " + gw.env["FAREGATE_ADMIN_KEY"]},
    )
    assert bad.status_code in (400, 422)
    assert "countries.allow" in bad.text
    gw.admin("PATCH", f"/keys/{key_id}", json={"restrictions": {"countries": {"allow": ["DE"]}}})
    shown = gw.admin("GET", f"/accounts/{account}/keys")["data"][0]
    assert shown["restrictions"] == {"countries": {"allow": ["DE"]}}
    gw.admin(
        "PATCH", f"/accounts/{account}", json={"restrictions": {"countries": {"block": ["RU"]}}}
    )
    assert gw.account_state(account)["restrictions"] == {"countries": {"block": ["RU"]}}
    audit = gw.admin("GET", f"/audit?target={account}")["data"]
    assert any(e["action"] == "account.update" and e["target"] == account for e in audit)
