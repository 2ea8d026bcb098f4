"""The balancer through a running gateway: strategies, tiers, fallback, outages, caps, cache,
reloads. Upstream attempts are counted by the simulator, per upstream model name."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import ADMIN_KEY, PRICES, Gateway, Sim, ledger_consistent, start_gateway, stop

PRICE = ", ".join(f"{k} = {v}" for k, v in PRICES.items())


def _extra(sim_url: str, outage_key: str) -> str:
    return f"""
[providers.sim-flaky]
base_url = "{sim_url}/v1"
api_key = "sk-sim"
headers = {{ "x-sim-fault" = "status=500;fail_times=5;key={outage_key}" }}

[providers.sim-slow]
base_url = "{sim_url}/v1"
api_key = "sk-sim"
headers = {{ "x-sim-fault" = "latency_ms=40" }}

[providers.sim-keys]
base_url = "{sim_url}/v1"
api_keys = ["sk-sim-invalid", "sk-sim-good"]

[models.weighted]
price = {{ {PRICE} }}
[[models.weighted.deployments]]
provider = "sim"
upstream = "w-one"
weight = 1
[[models.weighted.deployments]]
provider = "sim"
upstream = "w-three"
weight = 3

[models.tiered]
price = {{ {PRICE} }}
[[models.tiered.deployments]]
provider = "sim"
upstream = "t-primary"
priority = 0
[[models.tiered.deployments]]
provider = "sim"
upstream = "t-backup"
priority = 1

[models.cheapest]
strategy = "cost"
price = {{ {PRICE} }}
[[models.cheapest.deployments]]
provider = "sim"
upstream = "c-dear"
cost = {{ input = 10, output = 10 }}
[[models.cheapest.deployments]]
provider = "sim"
upstream = "c-cheap"
cost = {{ input = 1, output = 1 }}

[models.fastest]
strategy = "latency"
price = {{ {PRICE} }}
[[models.fastest.deployments]]
provider = "sim-slow"
upstream = "l-slow"
[[models.fastest.deployments]]
provider = "sim"
upstream = "l-fast"

[models.calm]
strategy = "least_inflight"
price = {{ {PRICE} }}
[[models.calm.deployments]]
provider = "sim"
upstream = "i-one"
[[models.calm.deployments]]
provider = "sim"
upstream = "i-two"

[models.outage]
price = {{ {PRICE} }}
[[models.outage.deployments]]
provider = "sim-flaky"
upstream = "o-flaky"
[[models.outage.deployments]]
provider = "sim"
upstream = "o-healthy"

[models.capped]
price = {{ {PRICE} }}
[[models.capped.deployments]]
provider = "sim"
upstream = "cap-small"
rpm = 2
priority = 0
[[models.capped.deployments]]
provider = "sim"
upstream = "cap-spill"
priority = 1

[models.rotating]
provider = "sim-keys"
upstream = "k-rot"
price = {{ {PRICE} }}

[models.primary]
provider = "dead"
upstream = "p-dead"
fallbacks = ["backup"]
price = {{ input = 1000000, output = 2000000 }}

[models.backup]
provider = "sim"
upstream = "b-backup"
price = {{ input = 3000000, output = 4000000 }}

[models.cached]
provider = "sim"
upstream = "cached-up"
price = {{ {PRICE} }}
cache = {{ ttl_seconds = 60, price = {{ input = 500000, output = 500000 }} }}
"""


@pytest.fixture(scope="module")
def bal(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("bal")
    gw = start_gateway(
        sim.url,
        tmp,
        routing={
            "breaker_failures": 3,
            "breaker_cooldown_seconds": 1.0,
            "max_cooldown_seconds": 1.0,
            "wait_for_recovery_seconds": 0,
        },
        extra_models=_extra(sim.url, f"outage-{uuid.uuid4().hex}"),
    )
    yield gw
    stop(gw.proc)


@pytest.fixture
def key(bal: Gateway, sim: Sim) -> str:
    bal.reset_routing()
    return bal.account(100_000_000)[1]


def _chat(gw: Gateway, key: str, model: str, **body: Any) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=15,
    )


def _counts(sim: Sim, *names: str) -> list[int]:
    by_model = sim.stats()["by_model"]
    return [int(by_model.get(n, 0)) for n in names]


def _delta(before: list[int], after: list[int]) -> list[int]:
    return [b - a for a, b in zip(before, after, strict=True)]


def test_weights_are_honoured(bal: Gateway, sim: Sim, key: str) -> None:
    before = _counts(sim, "w-one", "w-three")
    for _ in range(400):
        assert _chat(bal, key, "weighted").status_code == 200
    one, three = _delta(before, _counts(sim, "w-one", "w-three"))
    assert one + three == 400
    assert 0.65 <= three / 400 <= 0.85  # 3:1 expects 0.75


def test_lower_tier_only_when_the_first_cannot_serve(bal: Gateway, sim: Sim, key: str) -> None:
    before = _counts(sim, "t-primary", "t-backup")
    for _ in range(30):
        assert _chat(bal, key, "tiered").status_code == 200
    assert _delta(before, _counts(sim, "t-primary", "t-backup")) == [30, 0]


def test_cost_strategy_takes_the_cheapest(bal: Gateway, sim: Sim, key: str) -> None:
    before = _counts(sim, "c-dear", "c-cheap")
    for _ in range(20):
        assert _chat(bal, key, "cheapest").status_code == 200
    assert _delta(before, _counts(sim, "c-dear", "c-cheap")) == [0, 20]


def test_latency_strategy_prefers_the_fast_one(bal: Gateway, sim: Sim, key: str) -> None:
    before = _counts(sim, "l-slow", "l-fast")
    for _ in range(40):
        assert _chat(bal, key, "fastest").status_code == 200
    slow, fast = _delta(before, _counts(sim, "l-slow", "l-fast"))
    assert fast >= 35  # the slow one is tried while unmeasured, then left alone
    assert slow <= 5


def test_least_inflight_spreads_concurrent_load(bal: Gateway, sim: Sim, key: str) -> None:
    import concurrent.futures

    before = _counts(sim, "i-one", "i-two")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: (
                    _chat(bal, key, "calm", metadata={"sim_fault": "latency_ms=50"}).status_code
                ),
                range(40),
            )
        )
    assert codes == [200] * 40
    one, two = _delta(before, _counts(sim, "i-one", "i-two"))
    assert one + two == 40
    assert 12 <= one <= 28


def test_outage_is_bounded_and_recovers(bal: Gateway, sim: Sim, key: str) -> None:
    """The flaky deployment fails its first 5 attempts: 3 failures open its breaker, then it
    gets one probe per cooldown (1 s), and after the fifth failure a probe succeeds and it
    takes traffic again. Clients never see a failure."""
    before = _counts(sim, "o-flaky", "o-healthy")
    started = time.monotonic()
    for _ in range(12):
        assert _chat(bal, key, "outage").status_code == 200
    assert time.monotonic() - started < 1.0  # all within one cooldown
    flaky, healthy = _delta(before, _counts(sim, "o-flaky", "o-healthy"))
    assert flaky == 3  # the breaker opened after 3 failures; no attempt while open
    assert healthy == 12
    probes = []
    for _ in range(4):
        time.sleep(1.05)
        seen = _counts(sim, "o-flaky")[0]
        assert _chat(bal, key, "outage").status_code == 200
        probes.append(_counts(sim, "o-flaky")[0] - seen)
    assert probes[:3] == [1, 1, 1]  # one probe per cooldown: failures 4 and 5, then success
    assert _counts(sim, "o-flaky")[0] - before[0] >= 6
    state = bal.admin("GET", "/routing")["deployments"]
    assert state["outage:sim-flaky/o-flaky"]["breaker"] == "closed"
    before = _counts(sim, "o-flaky", "o-healthy")
    for _ in range(40):
        assert _chat(bal, key, "outage").status_code == 200
    flaky, healthy = _delta(before, _counts(sim, "o-flaky", "o-healthy"))
    assert flaky >= 8 and healthy >= 8  # recovered: traffic is shared again


def test_rpm_cap_spills_to_the_next_tier(bal: Gateway, sim: Sim, key: str) -> None:
    before = _counts(sim, "cap-small", "cap-spill")
    for _ in range(5):
        assert _chat(bal, key, "capped").status_code == 200
    assert _delta(before, _counts(sim, "cap-small", "cap-spill")) == [2, 3]


def test_refused_upstream_key_is_rotated_out(bal: Gateway, sim: Sim, key: str) -> None:
    for _ in range(6):
        assert _chat(bal, key, "rotating").status_code == 200
    state = bal.admin("GET", "/routing")["deployments"]
    assert state["rotating:sim-keys/k-rot"]["breaker"] == "closed"


def test_fallback_is_priced_at_the_model_that_served(bal: Gateway, key: str) -> None:
    account, own_key = bal.account(100_000_000)
    r = _chat(bal, own_key, "primary", max_tokens=20)
    assert r.status_code == 200, r.text
    assert r.headers["x-faregate-model"] == "backup"
    assert r.headers["x-faregate-attempts"].endswith("sim/b-backup=ok")
    usage = r.json()["usage"]
    expected = -(
        -(usage["prompt_tokens"] * 3_000_000 + usage["completion_tokens"] * 4_000_000) // 10**6
    )
    assert usage["cost_micro_credits"] == expected
    settle = [row for row in bal.ledger(account) if row["kind"] == "settle"]
    assert settle[0]["cost"] == expected and settle[0]["model"] == "primary"
    ledger_consistent(bal, account)


def test_response_cache_per_key_at_the_cache_price(bal: Gateway, sim: Sim) -> None:
    account, own_key = bal.account(100_000_000)
    before = _counts(sim, "cached-up")[0]
    first = _chat(bal, own_key, "cached", temperature=0)
    second = _chat(bal, own_key, "cached", temperature=0)
    assert first.status_code == second.status_code == 200
    assert "x-faregate-cache" not in first.headers
    assert second.headers["x-faregate-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    assert _counts(sim, "cached-up")[0] - before == 1
    usage = second.json()["usage"]
    total = usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["cost_micro_credits"] == -(-total * 500_000 // 10**6)
    _, other = bal.account(1_000_000)
    assert "x-faregate-cache" not in _chat(bal, other, "cached", temperature=0).headers
    ledger_consistent(bal, account)


def test_catalog_reload(bal: Gateway, sim: Sim, key: str) -> None:
    original = bal.config_path.read_text()
    try:
        bal.config_path.write_text(
            original + f'\n[models."hot-new"]\nprovider = "sim"\nprice = {{ {PRICE} }}\n'
        )
        assert bal.admin("POST", "/reload")["reloaded"]
        assert _chat(bal, key, "hot-new").status_code == 200
        bal.config_path.write_text(original + "\n[models.broken]\nprovider = 'nope'\n")
        r = httpx.post(
            bal.url + "/admin/v1/reload",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
        )
        assert r.status_code == 400
        assert "models.broken" in r.json()["error"]["message"]
        assert _chat(bal, key, "hot-new").status_code == 200  # the old catalog serves on
    finally:
        bal.config_path.write_text(original)
        bal.admin("POST", "/reload")
    assert _chat(bal, key, "hot-new").status_code == 404


def test_metrics(bal: Gateway, key: str) -> None:
    _chat(bal, key, "weighted")
    text = httpx.get(bal.url + "/metrics", timeout=10).text
    assert 'faregate_upstream_requests_total{deployment="sim/w-one"' in text or (
        'faregate_upstream_requests_total{deployment="sim/w-three"' in text
    )
    assert "faregate_breaker_state" in text
    assert "faregate_upstream_latency_seconds_bucket" in text
    assert "faregate_tokens_total" in text
