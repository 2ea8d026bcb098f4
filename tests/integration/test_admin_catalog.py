"""Prices and plans through the admin API: stored, applied at once, audited, refused when
invalid, and back to the config file's when deleted."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from harness import ADMIN_KEY, Gateway, Sim, start_gateway, stop

PLANS = '[limits]\ndefault_plan = "base"\n[plans.base.chat]\nrpm = 1000\n'


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(sim.url, tmp_path_factory.mktemp("catalog"), extra_models=PLANS)
    yield g
    stop(g.proc)


def _chat(gw: Gateway, key: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "sim-large", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def _admin(gw: Gateway, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(
        method,
        f"{gw.url}/admin/v1{path}",
        timeout=10,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        **kw,
    )  # type: ignore[arg-type]


def test_a_stored_price_applies_at_once_and_can_be_removed(gw: Gateway) -> None:
    _, key = gw.account(10_000_000)
    before = _chat(gw, key).json()["usage"]
    assert before["cost_micro_credits"] == before["prompt_tokens"] + 2 * before["completion_tokens"]
    r = _admin(gw, "PUT", "/prices/sim-large", json={"input": 10_000_000, "output": 0})
    assert r.status_code == 200 and r.json()["source"] == "admin"
    after = _chat(gw, key).json()["usage"]
    assert after["cost_micro_credits"] == 10 * after["prompt_tokens"]
    listed = {p["model"]: p for p in _admin(gw, "GET", "/prices").json()["data"]}
    assert listed["sim-large"]["source"] == "admin" and listed["sim-small"]["source"] == "config"
    assert _admin(gw, "DELETE", "/prices/sim-large").status_code == 200
    again = _chat(gw, key).json()["usage"]
    assert again["cost_micro_credits"] == again["prompt_tokens"] + 2 * again["completion_tokens"]
    actions = [row["action"] for row in gw.admin("GET", "/audit?limit=50")["data"]]
    assert "price.set" in actions and "price.delete" in actions


def test_prices_are_validated(gw: Gateway) -> None:
    assert _admin(gw, "PUT", "/prices/no-such", json={"input": 1, "output": 1}).status_code == 404
    r = _admin(gw, "PUT", "/prices/sim-large", json={"input": -1, "output": 1})
    assert r.status_code == 422 and "input" in r.json()["error"]["message"]
    for field in ("input", "output", "cached_input"):
        body = {"input": 1, "output": 1, field: 2**63}
        r = _admin(gw, "PUT", "/prices/sim-large", json=body)
        assert r.status_code == 422 and r.json()["error"]["param"] == field, r.text
    r = _admin(gw, "PUT", "/prices/sim-large", json={"input": 10**15, "output": 10**15 + 1})
    assert r.status_code == 422 and r.json()["error"]["param"] == "output"
    prices = {p["model"]: p for p in gw.admin("GET", "/prices")["data"]}
    assert prices["sim-large"]["source"] == "config"


def test_a_stored_plan_limits_at_once(gw: Gateway) -> None:
    _, key = gw.account(10_000_000)
    assert _chat(gw, key).headers["x-ratelimit-limit-requests"] == "1000"
    r = _admin(gw, "PUT", "/plans/base", json={"chat": {"rpm": 2}})
    assert r.status_code == 200
    codes = [_chat(gw, key).status_code for _ in range(3)]
    assert codes[-1] == 429
    plans = _admin(gw, "GET", "/plans").json()
    assert plans["default_plan"] == "base" and plans["data"][0]["source"] == "admin"
    assert _admin(gw, "DELETE", "/plans/base").status_code == 200
    assert _chat(gw, key).headers["x-ratelimit-limit-requests"] == "1000"
    bad = _admin(gw, "PUT", "/plans/x", json={"chats": {"rpm": 1}})
    assert bad.status_code == 400 and "chats" in bad.json()["error"]["message"]
