"""Prometheus metrics: one registry per app, per-deployment counters, latency and breakers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class SetAsideKeys(Collector):
    """`faregate_upstream_key_set_aside_seconds`: read from the balancer at each scrape, so
    that a key's seconds left are current and a key back in rotation disappears."""

    def __init__(self) -> None:
        self.source: Callable[[], list[tuple[str, str, str, float]]] = list
        """(provider, key label, reason, seconds left) of each set-aside key."""

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "faregate_upstream_key_set_aside_seconds",
            "Seconds until a set-aside upstream key is used again (key = its place in the"
            " provider's list).",
            labels=["provider", "key", "reason"],
        )
        for provider, key, reason, seconds in self.source():
            gauge.add_metric([provider, key, reason], seconds)
        yield gauge


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.upstream_requests = Counter(
            "faregate_upstream_requests",
            "Upstream attempts by outcome.",
            ["model", "deployment", "outcome"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "faregate_upstream_errors",
            "Failed upstream attempts by failure class.",
            ["model", "deployment", "failure"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "faregate_upstream_latency_seconds",
            "Time to the upstream's first byte.",
            ["model", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.breaker_state = Gauge(
            "faregate_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["model", "deployment"],
            registry=r,
        )
        self.tokens = Counter(
            "faregate_tokens",
            "Tokens billed, by kind.",
            ["model", "deployment", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "faregate_cost_micro_credits",
            "Micro-credits charged.",
            ["model"],
            registry=r,
        )
        self.cache = Counter(
            "faregate_cache_lookups",
            "Response cache lookups.",
            ["model", "result"],
            registry=r,
        )
        self.set_aside_keys = SetAsideKeys()
        r.register(self.set_aside_keys)
        self.guard_refusals = Counter(
            "faregate_guard_refusals",
            "Requests refused by a guard, by guard and detector.",
            ["guard", "detector"],
            registry=r,
        )
        self.guard_classifier = Counter(
            "faregate_guard_classifier_calls",
            "Calls to a guard's classifier model, by outcome.",
            ["model", "outcome"],
            registry=r,
        )
        self.guard_classifier_cost = Counter(
            "faregate_guard_classifier_cost_micro_credits",
            "What classifier calls cost at their configured price, by who pays.",
            ["model", "billed_to"],
            registry=r,
        )
        self.limiter_degraded = Counter(
            "faregate_limiter_degraded",
            "Rate-limit checks that fell back to local limits.",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DeploymentSeries:
    """The labelled series of one (model, deployment), looked up once and kept: a label
    lookup per request costs more than the increment itself."""

    __slots__ = ("breaker", "completion_tokens", "latency", "ok", "prompt_tokens")

    def __init__(self, metrics: Metrics, model: str, deployment: str) -> None:
        self.ok = metrics.upstream_requests.labels(model, deployment, "ok")
        self.latency = metrics.upstream_latency.labels(model, deployment)
        self.breaker = metrics.breaker_state.labels(model, deployment)
        self.prompt_tokens = metrics.tokens.labels(model, deployment, "prompt")
        self.completion_tokens = metrics.tokens.labels(model, deployment, "completion")
