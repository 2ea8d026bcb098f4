"""Candidate order and learning from outcomes, on a fake clock and a seeded random source."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from faregate.billing.types import Price
from faregate.config import Routing, Timeouts
from faregate.errors import FailureClass, UpstreamError
from faregate.kinds import Kind
from faregate.metrics import Metrics
from faregate.providers.openai import OpenAIChat
from faregate.routing.balancer import Balancer
from faregate.routing.catalog import Deployment, ModelEntry

P = Price(input=1, output=1)


def dep(
    name: str,
    *,
    weight: float = 1,
    priority: int = 0,
    cost: int = 1,
    keys: tuple[str, ...] = ("k",),
) -> Deployment:
    return Deployment(
        id=f"m:{name}",
        name=name,
        provider=f"p-{name}",
        adapter=OpenAIChat(),
        base_url="http://x",
        headers={},
        keys=keys,
        upstream_model=name,
        timeouts=Timeouts(),
        weight=weight,
        priority=priority,
        rpm=None,
        tpm=None,
        cost=Price(input=cost, output=cost),
        max_tokens_param="max_tokens",
    )


def model(
    *deps: Deployment, strategy: str = "weighted", name: str = "m", fallbacks: tuple[str, ...] = ()
) -> ModelEntry:
    return ModelEntry(name, Kind.CHAT, P, 100, "o", 0, deps, strategy, fallbacks, None)  # type: ignore[arg-type]


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def balancer(clock: Clock | None = None) -> Balancer:
    return Balancer(
        Routing(breaker_failures=2), Metrics(), clock=clock or Clock(), rng=random.Random(7)
    )


def test_weighted_first_pick_follows_weights() -> None:
    b = balancer()
    m = model(dep("a", weight=1), dep("b", weight=9))
    firsts = Counter(b.plan([m], set())[0][1].name for _ in range(2000))
    assert 0.86 <= firsts["b"] / 2000 <= 0.94


def test_tiers_then_fallbacks_then_tried_ones() -> None:
    b = balancer()
    main = model(dep("low", priority=1), dep("top", priority=0), fallbacks=("fb",))
    fb = model(dep("f"), name="fb")
    order = [d.name for _, d in b.plan([main, fb], set())]
    assert order == ["top", "low", "f"]
    order = [d.name for _, d in b.plan([main, fb], {"m:top"})]
    assert order == ["low", "f", "top"]


def test_cost_and_least_inflight() -> None:
    b = balancer()
    m = model(dep("dear", cost=9), dep("cheap", cost=1), strategy="cost")
    assert [d.name for _, d in b.plan([m], set())] == ["cheap", "dear"]
    busy, idle = dep("busy"), dep("idle")
    m = model(busy, idle, strategy="least_inflight")
    b.health(busy).inflight = 3
    assert b.plan([m], set())[0][1].name == "idle"


def test_failure_classes_decide() -> None:
    clock = Clock()
    b = balancer(clock)
    a = dep("a", keys=("k1", "k2"))
    m = model(a)
    att = b.begin(m, a)
    assert att is not None and att.key == "k1"
    b.failed(att, UpstreamError(FailureClass.QUOTA, "out of quota"))
    att = b.begin(m, a)
    assert att is not None and att.key == "k2"  # the key out of quota is set aside
    att2 = b.begin(m, a)
    assert att2 is not None and att2.key == "k2"
    b.abandoned(att2)
    b.failed(att, UpstreamError(FailureClass.RATE_LIMIT, "slow", retry_after=4))
    assert b.plan([m], set()) == []
    assert b.recovers_in([m]) == 4
    clock.now = 4
    att = b.begin(m, a)
    assert att is not None
    b.failed(att, UpstreamError(FailureClass.CALLER, "bad request"))
    assert b.plan([m], set())  # the caller's fault says nothing about the deployment
    for _ in range(2):
        att = b.begin(m, a)
        assert att is not None
        b.failed(att, UpstreamError(FailureClass.TRANSIENT, "500"))
    assert b.plan([m], set()) == []  # breaker open
    b.reset()
    assert b.plan([m], set())


def test_half_open_probe_goes_first() -> None:
    clock = Clock()
    b = balancer(clock)
    sick, well = dep("sick", weight=0.001), dep("well", weight=1000)
    m = model(sick, well)
    for _ in range(2):
        att = b.begin(m, sick)
        assert att is not None
        b.failed(att, UpstreamError(FailureClass.TRANSIENT, "500"))
    assert [d.name for _, d in b.plan([m], set())] == ["well"]
    clock.now = 11
    assert [d.name for _, d in b.plan([m], set())] == ["sick", "well"]


def _fail(b: Balancer, m: ModelEntry, d: Deployment, failure: FailureClass, rid: str) -> None:
    att = b.begin(m, d)
    assert att is not None
    att.request_id = rid
    b.failed(att, UpstreamError(failure, "no", status=401))


def test_a_refused_request_sets_nothing_aside() -> None:
    b = balancer()  # breaker_failures=2
    a = dep("a", keys=("k1",))
    m = model(a)
    for i in range(5):
        _fail(b, m, a, FailureClass.REFUSED, f"r{i}")
    assert b.plan([m], set())  # neither the breaker nor the key
    assert b.set_aside_keys() == []
    assert b.snapshot()["m:a"]["breaker"] == "closed"


def test_an_invalid_key_is_set_aside_once_different_requests_saw_it() -> None:
    clock = Clock()
    b = balancer(clock)
    a = dep("a", keys=("sk-secret-1", "sk-secret-2"))
    m = model(a)
    pool = b.keys(a)
    for _ in range(5):  # one request retrying counts once
        pool.cursor = 0  # the first key
        att = b.begin(m, a)
        assert att is not None
        att.request_id = "same"
        b.failed(att, UpstreamError(FailureClass.CREDENTIAL, "bad key", status=401))
    assert pool.aside == {}
    for rid in ("r2", "r3"):
        pool.cursor = 0  # the first key again
        _fail(b, m, a, FailureClass.CREDENTIAL, rid)
    assert [r["key"] for r in b.set_aside_keys() if r["set_aside"]] == ["#1"]
    assert {b.begin(m, a).key for _ in range(4)} == {"sk-secret-2"}  # type: ignore[union-attr]
    row = b.set_aside_keys()[0]
    assert row["reason"] == "credential" and row["status"] == 401
    assert row["seconds_left"] == Routing().credential_disable_seconds
    assert "sk-secret" not in str(b.set_aside_keys())
    assert 'reason="credential"' in b.metrics.render().decode()
    clock.now = Routing().credential_disable_seconds
    assert b.set_aside_keys() == [] and pool.usable(clock.now)


def test_a_success_or_the_window_forgets_invalid_key_errors() -> None:
    clock = Clock()
    b = balancer(clock)
    a = dep("a", keys=("k1",))
    m = model(a)
    _fail(b, m, a, FailureClass.CREDENTIAL, "r1")
    _fail(b, m, a, FailureClass.CREDENTIAL, "r2")
    assert b.set_aside_keys()[0]["requests_seen"] == 2
    att = b.begin(m, a)
    assert att is not None
    b.succeeded(att)  # the key works: those errors were not about it
    _fail(b, m, a, FailureClass.CREDENTIAL, "r3")
    clock.now = Routing().credential_window_seconds + 1
    _fail(b, m, a, FailureClass.CREDENTIAL, "r4")
    _fail(b, m, a, FailureClass.CREDENTIAL, "r5")
    assert b.plan([m], set())  # r3 fell out of the window: only two in it
    _fail(b, m, a, FailureClass.CREDENTIAL, "r6")
    assert b.plan([m], set()) == []


@pytest.mark.parametrize("status", [400, 409, 413, 415, 422])
def test_the_breaker_ignores_what_a_request_got_wrong(status: int) -> None:
    b = balancer()  # breaker_failures=2
    a = dep("a")
    m = model(a)
    for _ in range(4):
        att = b.begin(m, a)
        assert att is not None
        b.failed(att, OpenAIChat().classify_error(status, {}, b'{"error": {"message": "no"}}'))
        served = b.begin(m, a)
        assert served is not None
        b.succeeded(served)
        for failure in (FailureClass.CALLER, FailureClass.REFUSED, FailureClass.CREDENTIAL):
            b.broke_mid_stream(served, UpstreamError(failure, "mid-stream"))
    assert b.snapshot()["m:a"]["breaker"] == "closed"
    assert b.snapshot()["m:a"]["recent_failures"] == 0
