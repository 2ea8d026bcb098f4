"""Prometheus metrics: one registry per app, per-deployment counters, latency and breakers."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
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


class DeploymentSeries:
    """The series of one (model, deployment) as plain numbers, rendered at each scrape by
    `Tallies`. The event loop is their only writer and, since `/metrics` is served there
    too, their only reader: an increment is an attribute update, not prometheus_client's
    locked value behind three checks and a label lookup."""

    __slots__ = (
        "breaker",
        "buckets",
        "completion_tokens",
        "deployment",
        "errors",
        "latency_sum",
        "model",
        "ok",
        "prompt_tokens",
    )

    def __init__(self, model: str, deployment: str) -> None:
        self.model = model
        self.deployment = deployment
        self.ok = 0
        self.errors = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.breaker = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last: above every bound
        self.latency_sum = 0.0

    def observe(self, seconds: float) -> None:
        """One latency: counted in the first bucket whose bound it does not pass."""
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


class Tallies(Collector):
    """The metrics counted on the hot path, kept as plain numbers (`DeploymentSeries`, the
    cost per model) and turned into Prometheus families only when scraped."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], DeploymentSeries] = {}
        self.cost: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "faregate_upstream_requests",
            "Upstream attempts by outcome.",
            labels=["model", "deployment", "outcome"],
        )
        latency = HistogramMetricFamily(
            "faregate_upstream_latency_seconds",
            "Time to the upstream's first byte.",
            labels=["model", "deployment"],
        )
        breaker = GaugeMetricFamily(
            "faregate_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            labels=["model", "deployment"],
        )
        tokens = CounterMetricFamily(
            "faregate_tokens", "Tokens billed, by kind.", labels=["model", "deployment", "kind"]
        )
        for s in self.series.values():
            names = [s.model, s.deployment]
            requests.add_metric([*names, "ok"], s.ok)
            if s.errors:
                requests.add_metric([*names, "error"], s.errors)
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), s.buckets, strict=True):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            latency.add_metric(names, buckets, s.latency_sum)
            breaker.add_metric(names, s.breaker)
            tokens.add_metric([*names, "prompt"], s.prompt_tokens)
            tokens.add_metric([*names, "completion"], s.completion_tokens)
        cost = CounterMetricFamily(
            "faregate_cost_micro_credits", "Micro-credits charged.", labels=["model"]
        )
        for model, amount in self.cost.items():
            cost.add_metric([model], amount)
        yield from (requests, latency, breaker, tokens, cost)


def _bound(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (`0.005`, `1.0`, `+Inf`)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.tallies = Tallies()
        r.register(self.tallies)
        self.upstream_errors = Counter(
            "faregate_upstream_errors",
            "Failed upstream attempts by failure class.",
            ["model", "deployment", "failure"],
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

    def deployment(self, model: str, deployment: str) -> DeploymentSeries:
        """The series of one (model, deployment), made on first use."""
        key = (model, deployment)
        series = self.tallies.series.get(key)
        if series is None:
            series = self.tallies.series[key] = DeploymentSeries(model, deployment)
        return series

    def charged(self, model: str, cost: int) -> None:
        """Micro-credits charged for `model`."""
        costs = self.tallies.cost
        costs[model] = costs.get(model, 0) + cost
