"""Bad input gets the documented status and envelope, and leaves no hold open."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import Gateway, Sim, ledger_consistent

GOOD = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def acct(gateway: Gateway) -> tuple[str, str]:
    return gateway.account(1_000_000)


def _post(
    gw: Gateway, key: str | None, body: Any, path: str = "/v1/chat/completions", **kw: Any
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, bytes):
        return httpx.post(gw.url + path, content=body, headers=headers, timeout=10, **kw)
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=10, **kw)


def _envelope(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "code", "param"}
    assert err["message"] and err["type"]
    if code:
        assert err["code"] == code
    return dict(err)


def _nothing_held(gw: Gateway, account: str) -> None:
    state = gw.account_state(account)
    assert state["open_holds"] == 0
    assert state["balance"] == 1_000_000
    assert [r["kind"] for r in gw.ledger(account)] == ["grant"]
    ledger_consistent(gw, account)


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b"{not json", 422, "invalid_json", None),
        (b"[1, 2]", 422, "invalid_json", None),
        (b"", 422, "invalid_json", None),
        ({**GOOD, "max_tokens": "ten"}, 422, "validation_error", "max_tokens"),
        ({**GOOD, "stream": "yes"}, 422, "validation_error", "stream"),
        ({**GOOD, "temperature": "hot"}, 422, "validation_error", "temperature"),
        ({**GOOD, "messages": "hi"}, 422, "validation_error", "messages"),
        (
            {**GOOD, "messages": [{"role": "wizard", "content": "x"}]},
            422,
            "validation_error",
            "messages[0].role",
        ),
        (
            {**GOOD, "messages": [{"role": "user", "content": 5}]},
            422,
            "validation_error",
            "messages[0].content",
        ),
        ({**GOOD, "model": 5}, 422, "validation_error", "model"),
        ({"messages": GOOD["messages"]}, 400, "missing_model", "model"),
        ({"model": "sim-small"}, 400, "missing_messages", "messages"),
        ({**GOOD, "messages": []}, 400, "empty_messages", "messages"),
        ({**GOOD, "temperature": 5}, 400, "invalid_value", "temperature"),
        ({**GOOD, "max_tokens": 0}, 400, "invalid_value", "max_tokens"),
        ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, 400, "invalid_value", "stop"),
        ({**GOOD, "model": "no-such-model"}, 404, "model_not_found", "model"),
    ],
)
def test_bad_bodies(
    gateway: Gateway,
    acct: tuple[str, str],
    body: Any,
    status: int,
    code: str,
    param: str | None,
) -> None:
    err = _envelope(_post(gateway, acct[1], body), status, code)
    assert err["param"] == param
    if param and status == 422:
        assert param in err["message"]  # the message names the field
    _nothing_held(gateway, acct[0])


def test_keys(gateway: Gateway, acct: tuple[str, str]) -> None:
    _envelope(_post(gateway, None, GOOD), 401, "missing_api_key")
    _envelope(_post(gateway, "fg-nope", GOOD), 401, "invalid_api_key")
    r = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=GOOD,
        timeout=10,
        headers={"authorization": "Basic abc"},
    )
    _envelope(r, 401)
    for header in ("x-api-key", "x-goog-api-key"):
        r = httpx.post(
            gateway.url + "/v1/chat/completions", json=GOOD, timeout=10, headers={header: acct[1]}
        )
        assert r.status_code == 200, r.text


def test_oversize_bodies_are_refused_while_reading(gateway: Gateway, acct: tuple[str, str]) -> None:
    big = (
        b'{"model": "sim-small", "messages": [{"role": "user", "content": "'
        + (b"x" * (11 * 1024 * 1024))
        + b'"}]}'
    )
    _envelope(_post(gateway, acct[1], big), 413, "payload_too_large")

    def chunked() -> Iterator[bytes]:  # no content-length: the cap applies while reading
        for _ in range(12):
            yield b" " * (1024 * 1024)

    r = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=chunked(),
        timeout=10,
        headers={"authorization": f"Bearer {acct[1]}"},
    )
    _envelope(r, 413, "payload_too_large")
    _nothing_held(gateway, acct[0])


def test_unknown_route_and_method(gateway: Gateway, acct: tuple[str, str]) -> None:
    _envelope(_post(gateway, acct[1], GOOD, "/v1/nothing/here"), 404, "unknown_route")
    r = httpx.get(gateway.url + "/v1/chat/completions", timeout=10)
    _envelope(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"


def test_insufficient_balance_makes_no_upstream_call(gateway: Gateway, sim: Sim) -> None:
    account, key = gateway.account(10)
    before = sim.stats()["requests"]
    err = _envelope(_post(gateway, key, {**GOOD, "max_tokens": 1000}), 402, "insufficient_balance")
    assert "micro-credits" in err["message"]
    state = gateway.account_state(account)
    assert state["balance"] == 10 and state["open_holds"] == 0
    assert [r["kind"] for r in gateway.ledger(account)] == ["grant"]
    assert sim.stats()["requests"] == before


def test_upstream_output_is_capped_at_the_hold(gateway: Gateway) -> None:
    """Without max_tokens the model's limit is sent upstream: a reply can never cost more
    than the hold, so the balance can never go below zero."""
    account, key = gateway.account(3_000)  # covers the prompt and 1000 output tokens at 2 each
    r = _post(gateway, key, {**GOOD, "metadata": {"sim_fault": "tokens=5000"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 1000
    state = gateway.account_state(account)
    assert state["balance"] >= 0
    ledger_consistent(gateway, account)


def test_refusals_say_they_cost_nothing(gateway: Gateway, acct: tuple[str, str]) -> None:
    r = _post(gateway, acct[1], {**GOOD, "model": "no-such-model"})
    assert r.status_code == 404
    assert r.headers["x-faregate-cost"] == "0"
    assert r.headers["x-request-id"].startswith("req_")
