"""Plans and rate limits through a running gateway (in-process limits, one replica)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Gateway, Sim, config_toml, free_port, spawn, start_gateway, stop

LIMITS = """
[limits]
default_plan = "standard"
[plans.standard.chat]
rpm = 5
[plans.standard.embeddings]
rpd = 2
[plans.free.chat]
rpm = 3
[plans.daily.chat]
rpd = 2
[plans.tokens.chat]
tpm = 50
[plans.slots.chat]
concurrency = 2
"""

BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
REQUEST_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(sim.url, tmp_path_factory.mktemp("limits"), extra_models=LIMITS)
    yield gateway
    stop(gateway.proc)


def chat(gw: Gateway, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={**BODY, **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def account(gw: Gateway, plan: str | None = None) -> tuple[str, str, str]:
    """A funded account on `plan` (the default plan when None): (account id, key id, key)."""
    acct, key = gw.account(10_000_000)
    if plan is not None:
        gw.admin("PATCH", f"/accounts/{acct}", json={"plan": plan})
    key_id = str(gw.admin("GET", f"/accounts/{acct}/keys")["data"][0]["id"])
    return acct, key_id, key


def assert_refused(r: httpx.Response, code: str) -> dict[str, Any]:
    assert r.status_code == 429, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == code
    assert int(r.headers["retry-after"]) >= 1
    return error


def test_default_plan_rpm_with_headers(gw: Gateway) -> None:
    acct, _, key = account(gw)
    started = time.time()
    for remaining in (4, 3, 2, 1, 0):
        r = chat(gw, key)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit-requests"] == "5"
        assert r.headers["x-ratelimit-remaining-requests"] == str(remaining)
        reset = int(r.headers["x-ratelimit-reset-requests"])
        assert started + 60 <= reset <= time.time() + 61  # when the first leaves the window
        assert "x-ratelimit-limit-tokens" not in r.headers
    r = chat(gw, key)
    error = assert_refused(r, "rate_limit_exceeded")
    assert error["message"] == (
        "Rate limit reached: 5 requests per minute for chat on plan standard."
    )
    assert 55 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert all(name in r.headers for name in REQUEST_HEADERS)
    # A refused request took no hold and cost nothing.
    assert gw.account_state(acct)["open_holds"] == 0
    assert sum(1 for row in gw.ledger(acct) if row["kind"] == "hold") == 5


def test_refusal_in_the_gemini_envelope(gw: Gateway) -> None:
    _, _, key = account(gw, "free")
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    url = gw.url + "/v1beta/models/gemini-sim:generateContent"
    statuses = [
        httpx.post(url, json=body, headers={"x-goog-api-key": key}, timeout=10) for _ in range(4)
    ]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    refused = statuses[-1]
    assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "3 requests per minute for chat on plan free" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert "retry-after" in refused.headers


def test_rpd(gw: Gateway) -> None:
    _, _, key = account(gw, "daily")
    assert [chat(gw, key).status_code for _ in range(2)] == [200, 200]
    r = chat(gw, key)
    error = assert_refused(r, "requests_per_day_exceeded")
    assert "2 requests per day for chat on plan daily" in error["message"]
    midnight = (int(time.time()) // 86_400 + 1) * 86_400
    assert r.headers["x-ratelimit-reset-requests"] == str(midnight)
    assert abs(int(r.headers["retry-after"]) - (midnight - time.time())) <= 2


def test_route_classes_count_apart(gw: Gateway) -> None:
    _, _, key = account(gw)
    auth = {"authorization": f"Bearer {key}"}

    def embed() -> httpx.Response:
        body = {"model": "embed-sim", "input": "hello"}
        return httpx.post(gw.url + "/v1/embeddings", json=body, headers=auth, timeout=10)

    first = embed()
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-requests"] == "2"  # standard: embeddings rpd = 2
    assert embed().status_code == 200
    assert_refused(embed(), "requests_per_day_exceeded")
    assert chat(gw, key).status_code == 200  # chat has its own window


def test_tpm_counts_the_tokens_of_finished_requests(gw: Gateway) -> None:
    _, _, key = account(gw, "tokens")
    fault = {"metadata": {"sim_fault": "tokens=60"}}
    first = chat(gw, key, **fault)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-tokens"] == "50"
    assert first.headers["x-ratelimit-remaining-tokens"] == "50"
    assert "x-ratelimit-limit-requests" not in first.headers  # no request limit on this plan
    # The tokens are counted just after the response has ended: allow that a moment.
    deadline = time.monotonic() + 3
    while (r := chat(gw, key, **fault)).status_code == 200:
        assert time.monotonic() < deadline, "the tokens were never counted"
        time.sleep(0.05)
    error = assert_refused(r, "tokens_per_minute_exceeded")
    assert "50 tokens per minute for chat on plan tokens" in error["message"]
    assert r.headers["x-ratelimit-remaining-tokens"] == "0"
    assert int(r.headers["x-ratelimit-reset-tokens"]) > time.time()


async def test_concurrency_slots_last_as_long_as_the_stream(gw: Gateway) -> None:
    _, _, key = account(gw, "slots")
    auth = {"authorization": f"Bearer {key}"}
    slow = {
        **BODY,
        "stream": True,
        "metadata": {"sim_fault": "tokens=8; chunk_delay_ms=150"},
    }
    async with httpx.AsyncClient(base_url=gw.url, headers=auth, timeout=15) as client:

        async def stream(started: asyncio.Event) -> int:
            async with client.stream("POST", "/v1/chat/completions", json=slow) as r:
                started.set()
                async for _ in r.aiter_bytes():
                    pass
                return r.status_code

        events = [asyncio.Event(), asyncio.Event()]
        streams = [asyncio.create_task(stream(e)) for e in events]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 10)
        r = await client.post("/v1/chat/completions", json=BODY)
        error = assert_refused(r, "concurrency_exceeded")
        assert "2 concurrent requests for chat on plan slots" in error["message"]
        assert await asyncio.wait_for(asyncio.gather(*streams), 15) == [200, 200]
        # The slots came back when the streams ended.
        deadline = time.monotonic() + 3
        while (r := await client.post("/v1/chat/completions", json=BODY)).status_code == 429:
            assert time.monotonic() < deadline, "the slots were never freed"
            await asyncio.sleep(0.05)
        assert r.status_code == 200


def test_account_and_key_overrides(gw: Gateway) -> None:
    acct, key_id, key = account(gw, "free")
    gw.admin("PATCH", f"/accounts/{acct}", json={"limits": {"chat": {"rpm": 4}}})
    codes = [chat(gw, key).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    error = chat(gw, key).json()["error"]
    assert error["message"] == (
        "Rate limit reached: 4 requests per minute for chat on this account (plan free)."
    )
    # The key's override wins over the account's: this key may make 6 in the minute.
    gw.admin("PATCH", f"/keys/{key_id}", json={"limits": {"chat": {"rpm": 6}}})
    r = chat(gw, key)
    assert r.status_code == 200
    assert r.headers["x-ratelimit-limit-requests"] == "6"
    assert r.headers["x-ratelimit-remaining-requests"] == "1"
    assert chat(gw, key).status_code == 200
    r = chat(gw, key)
    error = assert_refused(r, "rate_limit_exceeded")
    assert error["message"] == "Rate limit reached: 6 requests per minute for chat on this key."


def test_a_route_class_without_limits_has_no_headers(gw: Gateway) -> None:
    _, _, key = account(gw, "free")
    r = httpx.post(
        gw.url + "/v1/embeddings",
        json={"model": "embed-sim", "input": "hello"},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200
    assert not [h for h in r.headers if h.startswith("x-ratelimit")]


def test_several_replicas_without_redis_are_refused_at_startup(sim: Sim, tmp_path: Path) -> None:
    bad = LIMITS.replace("[limits]\n", "[limits]\nreplicas = 2\n")
    config = tmp_path / "faregate.toml"
    url = f"sqlite:///{tmp_path / 'faregate.db'}"
    config.write_text(config_toml(sim.url, database_url=url, extra_models=bad))
    env = {**os.environ, "FAREGATE_HOME": str(tmp_path), "FAREGATE_SECRET_KEY": "s"}
    args = [sys.executable, "-m", "faregate.cli", "serve", "--config", str(config)]
    proc = spawn([*args, "--port", str(free_port())], tmp_path / "gateway.log", env=env)
    try:
        assert proc.wait(timeout=20) != 0
    finally:
        stop(proc)
    log = (tmp_path / "gateway.log").read_text()
    assert "limits.replicas" in log
    assert "redis_url" in log
