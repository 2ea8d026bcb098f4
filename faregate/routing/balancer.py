"""The balancer: which deployment serves next, and what each outcome teaches it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from faregate.config import Routing
from faregate.errors import FailureClass, UpstreamError
from faregate.metrics import DeploymentSeries, Metrics
from faregate.routing.catalog import Deployment, ModelEntry
from faregate.routing.health import BreakerState, DeploymentHealth, KeyPool
from faregate.trace import request_id

HEALTH_FAILURES = (FailureClass.TRANSIENT, FailureClass.TIMEOUT)
"""The failures that speak of the upstream's health, the only ones a breaker counts."""


@dataclass(slots=True)
class Attempt:
    model: ModelEntry
    deployment: Deployment
    key: str | None
    started: float
    request_id: str = ""
    outcome: str = "pending"


class Balancer:
    """Routing state shared by every request of this process (it survives catalog reloads:
    it is keyed by deployment id and provider)."""

    def __init__(
        self,
        settings: Routing,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self._health: dict[str, DeploymentHealth] = {}
        self._keys: dict[str, KeyPool] = {}
        metrics.set_aside_keys.source = self._set_aside_series

    def series(self, attempt: Attempt) -> DeploymentSeries:
        return self.metrics.deployment(attempt.model.name, attempt.deployment.name)

    def health(self, dep: Deployment) -> DeploymentHealth:
        h = self._health.get(dep.id)
        if h is None:
            h = self._health[dep.id] = DeploymentHealth(self.settings)
        return h

    def keys(self, dep: Deployment) -> KeyPool:
        pool = self._keys.get(dep.provider)
        if pool is None or pool.keys != dep.keys:
            pool = self._keys[dep.provider] = KeyPool(dep.keys)
        return pool

    def reset(self) -> None:
        """Forget every breaker, cooldown and disabled key (an operator's fresh start)."""
        self._health.clear()
        self._keys.clear()

    def snapshot(self) -> dict[str, dict[str, object]]:
        """The state of every deployment seen so far, for the admin API."""
        now = self.clock()
        return {
            dep_id: {
                "breaker": h.state.name.lower(),
                "available": h.peek(now),
                "recovers_in": round(max(h.recovers_at(now) - now, 0.0), 3),
                "inflight": h.inflight,
                "latency_ewma_ms": h.ewma_ms,
                "recent_failures": len(h.failures),
            }
            for dep_id, h in self._health.items()
        }

    def _set_aside_series(self) -> list[tuple[str, str, str, float]]:
        now = self.clock()
        return [
            (provider, label, entry.reason, round(entry.until - now, 3))
            for provider, pool in self._keys.items()
            for label, entry in pool.set_aside(now)
        ]

    def set_aside_keys(self) -> list[dict[str, object]]:
        """Upstream keys out of rotation (shown by their place in the provider's list, never
        the key), and keys whose invalid-key errors are being counted."""
        now = self.clock()
        out: list[dict[str, object]] = []
        for provider, pool in sorted(self._keys.items()):
            out += [
                {
                    "provider": provider,
                    "key": label,
                    "set_aside": True,
                    "reason": entry.reason,
                    "status": entry.status,
                    "seconds_left": round(entry.until - now, 3),
                }
                for label, entry in pool.set_aside(now)
            ]
            out += [
                {
                    "provider": provider,
                    "key": label,
                    "set_aside": False,
                    "reason": "credential",
                    "requests_seen": seen,
                    "requests_needed": self.settings.credential_confirmations,
                }
                for label, seen in pool.suspected()
            ]
        return out

    # -- choosing --------------------------------------------------------------------

    def _ready(self, dep: Deployment, now: float) -> bool:
        h = self.health(dep)
        return (
            h.available(now) and h.under_caps(now, dep.rpm, dep.tpm) and self.keys(dep).usable(now)
        )

    def _order(self, model: ModelEntry, deps: list[Deployment]) -> list[Deployment]:
        """Deployments of one priority tier, best first, by the model's strategy."""
        strategy = model.strategy
        if strategy == "least_inflight":
            return sorted(deps, key=lambda d: (self.health(d).inflight, self.rng.random()))
        if strategy == "latency":
            return sorted(deps, key=lambda d: (self.health(d).ewma_ms or 0.0, self.rng.random()))
        if strategy == "cost":
            return sorted(deps, key=lambda d: (d.cost.input + d.cost.output, self.rng.random()))
        # The first pick follows the weights; the rest (only ever used for retries) follow in
        # order of weight. One draw per request, however many deployments.
        if len(deps) < 2:
            return list(deps)
        total = sum(d.weight for d in deps)
        point = self.rng.random() * total
        first = deps[-1]
        for dep in deps:
            point -= dep.weight
            if point < 0:
                first = dep
                break
        rest = sorted((d for d in deps if d is not first), key=lambda d: -d.weight)
        return [first, *rest]

    def plan(self, chain: list[ModelEntry], tried: set[str]) -> list[tuple[ModelEntry, Deployment]]:
        """Candidates in order: the model's tiers first, then each fallback's; deployments not
        yet tried in this request before those that were."""
        now = self.clock()
        fresh: list[tuple[ModelEntry, Deployment]] = []
        again: list[tuple[ModelEntry, Deployment]] = []
        for model in chain:
            tiers = sorted({d.priority for d in model.deployments})
            for tier in tiers:
                ready = [d for d in model.deployments if d.priority == tier and self._ready(d, now)]
                # A deployment due for its half-open probe goes first: it recovers as soon as it
                # can, and a failed probe costs only a retry elsewhere.
                probes = [d for d in ready if self.health(d).state is BreakerState.HALF_OPEN]
                rest = [d for d in ready if d not in probes]
                for dep in probes + self._order(model, rest):
                    (again if dep.id in tried else fresh).append((model, dep))
        return fresh + again

    def recovers_in(self, chain: list[ModelEntry]) -> float | None:
        """Seconds until the first deployment of the chain may be tried again."""
        now = self.clock()
        times = [
            self.health(d).recovers_at(now)
            for model in chain
            for d in model.deployments
            if self.keys(d).usable(now)
        ]
        return max(min(times) - now, 0.0) if times else None

    # -- outcomes --------------------------------------------------------------------

    def begin(
        self, model: ModelEntry, dep: Deployment, avoid: Collection[str] = ()
    ) -> Attempt | None:
        """Start an attempt (None when the provider has no usable key left but those in
        `avoid`: keys that already failed this request)."""
        now = self.clock()
        key = self.keys(dep).pick(now, avoid)
        if key is False:
            return None
        self.health(dep).begin(0)
        return Attempt(model, dep, key if isinstance(key, str) else None, now, request_id())

    def used(self, attempt: Attempt, prompt_tokens: int, completion_tokens: int) -> None:
        """Tokens an attempt consumed: the deployment's TPM cap and the token counters."""
        self.health(attempt.deployment).minute_tokens += prompt_tokens + completion_tokens
        series = self.series(attempt)
        series.prompt_tokens += prompt_tokens
        series.completion_tokens += completion_tokens

    def broke_mid_stream(self, attempt: Attempt, err: UpstreamError) -> None:
        """A stream that failed after its first byte: no retry; the breaker counts it when it
        speaks of the upstream's health."""
        h = self.health(attempt.deployment)
        if err.failure in HEALTH_FAILURES:
            h.inflight += 1  # `failed` settles the books of an attempt still in flight
            h.failed(self.clock())
        labels = (attempt.model.name, attempt.deployment.name)
        self.metrics.upstream_errors.labels(*labels, err.failure.value).inc()
        self.series(attempt).breaker = int(h.state)

    def succeeded(self, attempt: Attempt) -> None:
        h = self.health(attempt.deployment)
        latency = self.clock() - attempt.started
        h.succeeded(latency * 1000)
        if attempt.key is not None:
            self.keys(attempt.deployment).vouch(attempt.key)
        attempt.outcome = "ok"
        series = self.series(attempt)
        series.ok += 1
        series.observe(latency)
        series.breaker = int(h.state)

    def failed(self, attempt: Attempt, err: UpstreamError) -> None:
        """Learn from a failure: the failure class decides cooldown, breaker or key."""
        now = self.clock()
        dep = attempt.deployment
        h = self.health(dep)
        s = self.settings
        match err.failure:
            case FailureClass.CALLER | FailureClass.REFUSED:
                h.released()
            case FailureClass.RATE_LIMIT:
                h.rate_limited(now, err.retry_after)
            case FailureClass.QUOTA:
                h.released()
                if attempt.key is not None:
                    until = now + s.quota_disable_seconds
                    self.keys(dep).disable(attempt.key, until, "quota", err.status)
            case FailureClass.CREDENTIAL:
                h.released()
                pool = self.keys(dep)
                if attempt.key is not None and pool.suspect(
                    attempt.key,
                    attempt.request_id,
                    now,
                    s.credential_confirmations,
                    s.credential_window_seconds,
                ):
                    until = now + s.credential_disable_seconds
                    pool.disable(attempt.key, until, "credential", err.status)
            case _:
                h.failed(now)
        attempt.outcome = err.failure.value
        series = self.series(attempt)
        series.errors += 1
        series.breaker = int(h.state)
        self.metrics.upstream_errors.labels(attempt.model.name, dep.name, err.failure.value).inc()

    def abandoned(self, attempt: Attempt) -> None:
        """The request went away mid-attempt: no verdict on the deployment."""
        self.health(attempt.deployment).released()
        attempt.outcome = "abandoned"
