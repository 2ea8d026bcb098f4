"""Candidate order and learning from outcomes, on a fake clock and a seeded random source."""

from __future__ import annotations

import random
from collections import Counter

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
    b.failed(att, UpstreamError(FailureClass.CREDENTIAL, "bad key"))
    att = b.begin(m, a)
    assert att is not None and att.key == "k2"  # the refused key is set aside
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
