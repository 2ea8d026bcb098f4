"""`Idempotency-Key`: runs once upstream, billed once, replayed; 409 and 422 on misuse."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx
import pytest
from harness import Gateway, Sim, ledger_consistent

BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "once only"}]}


def _post(gw: Gateway, key: str, idem: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", "idempotency-key": idem},
        timeout=15,
    )


def _settles(gw: Gateway, account: str) -> int:
    return sum(1 for r in gw.ledger(account) if r["kind"] == "settle")


@pytest.mark.parametrize("stream", [False, True])
def test_replay_runs_once_and_bills_once(any_gateway: Gateway, sim: Sim, stream: bool) -> None:
    account, key = any_gateway.account(1_000_000)
    body = {**BODY, "stream": stream, "model": "sim-large"}
    before = sim.stats()["by_model"].get("sim-large", 0)
    first = _post(any_gateway, key, f"k-{stream}", body)
    second = _post(any_gateway, key, f"k-{stream}", body)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["x-faregate-model"] == "sim-large"
    assert sim.stats()["by_model"]["sim-large"] == before + 1
    assert _settles(any_gateway, account) == 1
    ledger_consistent(any_gateway, account)


def test_keys_are_per_api_key(gateway: Gateway) -> None:
    _, key_a = gateway.account(1_000_000)
    account_b, key_b = gateway.account(1_000_000)
    assert _post(gateway, key_a, "shared", BODY).status_code == 200
    r = _post(gateway, key_b, "shared", BODY)
    assert "idempotent-replayed" not in r.headers
    assert _settles(gateway, account_b) == 1


def test_same_key_other_body_is_422(gateway: Gateway) -> None:
    _, key = gateway.account(1_000_000)
    assert _post(gateway, key, "reused", BODY).status_code == 200
    r = _post(gateway, key, "reused", {**BODY, "temperature": 0.5})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reused"


def test_concurrent_duplicate_is_409(gateway: Gateway) -> None:
    account, key = gateway.account(1_000_000)
    slow = {**BODY, "metadata": {"sim_fault": "latency_ms=700"}}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(_post, gateway, key, "busy", slow)
        time.sleep(0.3)
        second = pool.submit(_post, gateway, key, "busy", slow)
        results = sorted([first.result().status_code, second.result().status_code])
    assert results == [200, 409]
    assert _settles(gateway, account) == 1


def test_caller_errors_are_stored_transient_ones_are_not(gateway: Gateway, sim: Sim) -> None:
    account, key = gateway.account(1_000_000)
    missing = {**BODY, "model": "no-such-model"}
    assert _post(gateway, key, "e1", missing).status_code == 404
    replay = _post(gateway, key, "e1", missing)
    assert replay.status_code == 404
    assert replay.headers["idempotent-replayed"] == "true"
    flaky = {**BODY, "model": "sim-faulty", "metadata": {"sim_fault": "status=500"}}
    assert _post(gateway, key, "e2", flaky).status_code == 502
    gateway.reset_routing()
    again = _post(gateway, key, "e2", flaky)
    assert again.status_code == 502
    assert "idempotent-replayed" not in again.headers  # the failure was not kept: it ran again
    gateway.reset_routing()
    assert gateway.account_state(account)["open_holds"] == 0
    ledger_consistent(gateway, account)


def test_bad_idempotency_key(gateway: Gateway) -> None:
    _, key = gateway.account(1_000_000)
    r = _post(gateway, key, "x" * 300, BODY)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_idempotency_key"
