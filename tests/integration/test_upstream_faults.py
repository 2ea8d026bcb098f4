"""Upstream failures: classified once, mapped to the documented client status, money intact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from harness import Gateway, Sim, ledger_consistent, start_gateway, stop


@pytest.fixture(scope="module")
def fast_gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with one-second first-byte and idle timeouts."""
    gw = start_gateway(
        sim.url, tmp_path_factory.mktemp("fast"), timeouts={"first_byte": 1, "idle": 1}
    )
    yield gw
    stop(gw.proc)


@pytest.fixture(autouse=True)
def _fresh(fast_gw: Gateway, sim: Sim) -> None:
    fast_gw.reset_routing()
    sim.reset()


def _chat(gw: Gateway, key: str, fault: str | None = None, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {
        "model": "sim-faulty",
        "messages": [{"role": "user", "content": "hello"}],
        **body,
    }
    if fault:
        payload["metadata"] = {"sim_fault": fault}
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {key}"},
        timeout=15,
    )


def _upstream_attempts(sim: Sim, model: str = "sim-faulty") -> int:
    return int(sim.stats()["by_model"].get(model, 0))


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after", "attempts"),
    [
        # cooling for longer than the gateway waits: no retry, 503 with the upstream's wait
        ("status=429;retry_after=7", 503, "no_provider_available", "7", 1),
        # short cooldowns are waited out and retried, up to max_attempts
        ("status=429;retry_after=0.2", 503, "no_provider_available", "1", 3),
        # the upstream account is out of quota: its key is set aside, nothing else serves
        ("error_type=insufficient_quota", 503, "no_provider_available", "30", 1),
        ("status=500", 502, "provider_error", None, 3),
        ("status=503", 502, "provider_error", None, 3),
        # the upstream called our key invalid: not tried again for this request
        ("status=401", 503, "no_provider_available", "30", 1),
        # the upstream refused this request (a model the key may not use): its own failure
        ("error_type=model_not_allowed", 403, "upstream_refused_request", None, 1),
        # the caller's fault is never retried
        ("status=400", 400, "upstream_rejected_request", None, 1),
        ("hang", 408, "provider_timeout", None, 3),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_failures_before_the_first_byte(
    fast_gw: Gateway,
    sim: Sim,
    fault: str,
    status: int,
    code: str,
    retry_after: str | None,
    attempts: int,
    stream: bool,
) -> None:
    account, key = fast_gw.account(1_000_000)
    r = _chat(fast_gw, key, fault, stream=stream)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.headers.get("retry-after") == retry_after
    assert _upstream_attempts(sim) == attempts
    assert r.headers["x-faregate-attempts"].count("sim-faulty") == attempts
    state = fast_gw.account_state(account)
    assert state["balance"] == 1_000_000 and state["open_holds"] == 0
    kinds = [row["kind"] for row in fast_gw.ledger(account)]
    assert sorted(kinds) == ["grant", "hold", "release"]  # one hold for all the attempts
    ledger_consistent(fast_gw, account)


@pytest.mark.parametrize("stream", [False, True])
def test_a_retry_that_succeeds_is_billed_once(fast_gw: Gateway, sim: Sim, stream: bool) -> None:
    account, key = fast_gw.account(1_000_000)
    r = _chat(fast_gw, key, f"status=500;fail_times=1;key=once-{stream}", stream=stream)
    assert r.status_code == 200
    assert _upstream_attempts(sim) == 2
    assert r.headers["x-faregate-attempts"].endswith("=ok")
    assert r.headers["x-faregate-attempts"].count("=transient") == 1
    kinds = sorted(row["kind"] for row in fast_gw.ledger(account))
    assert kinds == ["grant", "hold", "settle"]
    ledger_consistent(fast_gw, account)


def _as(gw: Gateway, key: str, model: str, fault: str | None = None) -> httpx.Response:
    """A chat request whose fault script reaches every upstream protocol (in `user`)."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if fault:
        body["user"] = "sim:" + fault
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=15,
    )


PROTOCOL_MODELS = ["sim-faulty", "claude-sim", "gemini-sim"]


@pytest.mark.parametrize("model", PROTOCOL_MODELS)
def test_one_tenants_refused_request_leaves_the_key_to_everyone_else(
    fast_gw: Gateway, model: str
) -> None:
    _, tenant = fast_gw.account(1_000_000)
    _, other = fast_gw.account(1_000_000)
    for _ in range(6):  # more than the breaker's failures and the key's confirmations
        r = _as(fast_gw, tenant, model, "error_type=model_not_allowed")
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "upstream_refused_request"
        assert r.headers["x-faregate-attempts"].endswith("=refused")
    assert _as(fast_gw, other, model).status_code == 200
    state = fast_gw.admin("GET", "/routing")
    assert state["upstream_keys"] == []
    assert {d["breaker"] for d in state["deployments"].values()} == {"closed"}


@pytest.mark.parametrize("model", PROTOCOL_MODELS)
def test_an_invalid_key_is_set_aside_once_confirmed(fast_gw: Gateway, sim: Sim, model: str) -> None:
    _, tenant = fast_gw.account(1_000_000)
    _, other = fast_gw.account(1_000_000)
    for seen in (1, 2):
        assert _as(fast_gw, tenant, model, "error_type=invalid_api_key").status_code == 503
        (row,) = fast_gw.admin("GET", "/routing")["upstream_keys"]
        assert not row["set_aside"] and row["requests_seen"] == seen
    calls = int(sim.stats()["requests"])
    # the third request that the provider answers "invalid key" confirms it
    assert _as(fast_gw, tenant, model, "error_type=invalid_api_key").status_code == 503
    (row,) = fast_gw.admin("GET", "/routing")["upstream_keys"]
    assert row["set_aside"] and row["reason"] == "credential" and row["key"] == "#1"
    assert 0 < row["seconds_left"] <= 600
    metrics = httpx.get(fast_gw.url + "/metrics", timeout=5).text
    assert 'faregate_upstream_key_set_aside_seconds{key="#1",provider=' in metrics
    r = _as(fast_gw, other, model)
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_provider_available"
    assert int(sim.stats()["requests"]) == calls + 1  # the set-aside key is not even tried


def test_the_breaker_ignores_requests_the_upstream_calls_wrong(fast_gw: Gateway) -> None:
    _, tenant = fast_gw.account(1_000_000)
    _, other = fast_gw.account(1_000_000)
    for fault in ["status=400", "status=409", "status=422", "status=413"] * 2:
        assert _chat(fast_gw, tenant, fault).status_code == 400
    assert _chat(fast_gw, other).status_code == 200
    (dep,) = fast_gw.admin("GET", "/routing")["deployments"].values()
    assert dep["breaker"] == "closed" and dep["recent_failures"] == 0


def test_connection_refused_is_503_with_retry_after(fast_gw: Gateway) -> None:
    account, key = fast_gw.account(1_000_000)
    r = _chat(fast_gw, key, model="dead-model")
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert r.json()["error"]["code"] == "no_provider_available"
    assert r.headers["x-faregate-attempts"].count("dead-model") == 3
    assert fast_gw.account_state(account)["balance"] == 1_000_000


def _sse_events(r: httpx.Response) -> list[Any]:
    out: list[Any] = []
    for block in r.text.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


@pytest.mark.parametrize("fault", ["cut_after=3", "stall_after=3"])
def test_stream_breaking_after_first_byte_ends_with_error_and_bills_delivered(
    fast_gw: Gateway, sim: Sim, fault: str
) -> None:
    account, key = fast_gw.account(1_000_000)
    r = _chat(fast_gw, key, fault, stream=True)
    assert r.status_code == 200
    assert _upstream_attempts(sim) == 1  # no fallback once the client has bytes
    events = _sse_events(r)
    assert "[DONE]" not in events
    expected = "stream_interrupted" if fault.startswith("cut") else "provider_timeout"
    assert events[-1]["error"]["code"] == expected
    delivered = [e for e in events[:-1] if e.get("choices")]
    assert len(delivered) >= 3
    settle = [row for row in fast_gw.ledger(account) if row["kind"] == "settle"]
    assert len(settle) == 1
    assert settle[0]["cost"] > 0 and settle[0]["estimated"] in (True, 1)
    assert settle[0]["completion_tokens"] > 0
    ledger_consistent(fast_gw, account)


def test_stream_without_usage_is_estimated_never_zero(fast_gw: Gateway) -> None:
    account, key = fast_gw.account(1_000_000)
    r = _chat(fast_gw, key, "no_usage", stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200
    events = _sse_events(r)
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["estimated"] is True
    settle = [row for row in fast_gw.ledger(account) if row["kind"] == "settle"]
    assert settle[0]["cost"] == usage_chunk["usage"]["cost_micro_credits"] > 0
    assert settle[0]["estimated"] in (True, 1)
    assert "without usage" in settle[0]["note"]


@pytest.mark.parametrize("model", ["sim-faulty", "claude-sim", "gemini-sim"])
def test_a_reply_without_usage_is_estimated_never_zero(fast_gw: Gateway, model: str) -> None:
    """Each upstream protocol's reply without usage (the fault travels in `user`)."""
    account, key = fast_gw.account(1_000_000)
    r = _chat(fast_gw, key, model=model, user="sim:no_usage")
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert usage["estimated"] is True and usage["completion_tokens"] > 0
    settle = [row for row in fast_gw.ledger(account) if row["kind"] == "settle"]
    assert len(settle) == 1 and settle[0]["cost"] == usage["cost_micro_credits"] > 0
    assert settle[0]["estimated"] in (True, 1)
    ledger_consistent(fast_gw, account)


def test_embeddings_without_usage_are_estimated(fast_gw: Gateway) -> None:
    account, key = fast_gw.account(1_000_000)
    r = httpx.post(
        fast_gw.url + "/v1/embeddings",
        json={"model": "embed-sim", "input": "hello there", "user": "sim:no_usage"},
        headers={"authorization": f"Bearer {key}"},
        timeout=15,
    )
    assert r.status_code == 200, r.text
    settle = [row for row in fast_gw.ledger(account) if row["kind"] == "settle"]
    assert len(settle) == 1 and settle[0]["cost"] > 0
    assert settle[0]["estimated"] in (True, 1)


def test_client_header_is_not_forwarded_upstream(fast_gw: Gateway, tmp_path: Path) -> None:
    _, key = fast_gw.account(1_000_000)
    r = httpx.post(
        fast_gw.url + "/v1/chat/completions",
        json={"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}", "x-sim-fault": "status=500"},
        timeout=10,
    )
    assert r.status_code == 200  # the fault header never reached the simulator
