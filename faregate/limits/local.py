"""In-process limits: exact sliding-window logs per API key id and route class.

What it admits, exactly (times from `clock`, epoch seconds):

* rpm: a request at time t is admitted only if fewer than `rpm` requests of the same API key
  id and route class were admitted in (t - 60 s, t]; so any 60 s interval holds at most
  `rpm` admitted requests, and a refused request is not counted.
* rpd: fewer than `rpd` admitted since the last UTC midnight.
* tpm: refused while the tokens recorded (by `record_tokens`, after requests end) in
  (t - 60 s, t] reach `tpm`; a request in flight is not yet counted, so several admitted
  together can take the window past `tpm` once.
* concurrency: fewer than `concurrency` admitted requests of the key whose lease is still open.

Counters are per API key id (two keys of one account count apart); the limit values come from
the account's plan and overrides (`faregate.limits.config.effective`). With `share` > 1 (the
fallback of N replicas while Redis is down) each value is divided by `share` (at least 1), so
the replicas together stay near the limit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from faregate.billing.types import KeyRecord
from faregate.limits.base import Lease
from faregate.limits.config import Effective, Limits, Plan, RouteLimits, effective
from faregate.limits.verdict import DAY, WINDOW, Usage, blocked, headers, refusal

SWEEP_SECONDS = 60.0


@dataclass(slots=True)
class _Counters:
    requests: deque[float] = field(default_factory=deque)
    day: int = -1
    today: int = 0
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0
    inflight: int = 0

    def prune(self, now: float) -> None:
        edge = now - WINDOW
        while self.requests and self.requests[0] <= edge:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= edge:
            self.token_sum -= self.tokens.popleft()[1]
        day = int(now // DAY)
        if day != self.day:
            self.day, self.today = day, 0

    @property
    def idle(self) -> bool:
        return not (self.requests or self.tokens or self.inflight or self.today)


class LocalLease:
    __slots__ = ("_counters", "headers")

    def __init__(self, counters: _Counters | None, headers: dict[str, str]) -> None:
        self._counters = counters
        self.headers = headers

    def release(self) -> None:
        counters, self._counters = self._counters, None
        if counters is not None:
            counters.inflight -= 1


def scaled(limits: RouteLimits, share: int) -> RouteLimits:
    """Each limit divided by `share`, at least 1."""
    if share <= 1:
        return limits
    values = limits.model_dump()
    return RouteLimits(**{k: max(1, v // share) if v else v for k, v in values.items()})


def _tokens_retry(counters: _Counters, tpm: int, now: float) -> float:
    """Seconds until enough recorded tokens leave the window to bring it under `tpm`."""
    left = counters.token_sum
    for at, count in counters.tokens:
        left -= count
        if left < tpm:
            return at + WINDOW - now
    return WINDOW


class LocalLimiter:
    """The limiter of a single replica; exact, no I/O (see the module docstring)."""

    def __init__(
        self,
        limits: Limits,
        plans: dict[str, Plan],
        *,
        share: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.plans = plans
        self.share = share
        self.clock = clock
        self._counters: dict[tuple[str, str], _Counters] = {}
        self._swept = clock()

    def effective(self, key: KeyRecord, route: str) -> Effective:
        eff = effective(
            self.limits, self.plans, key.plan, key.account_limits, key.key_limits, route
        )
        if self.share > 1:
            eff = Effective(eff.route, scaled(eff.limits, self.share), eff.plan, eff.source)
        return eff

    async def acquire(self, key: KeyRecord, route: str) -> Lease:
        return self.acquire_now(key, route)

    def acquire_now(self, key: KeyRecord, route: str) -> LocalLease:
        eff = self.effective(key, route)
        lim = eff.limits
        if lim.empty:
            return LocalLease(None, {})
        now = self.clock()
        closed = blocked(eff, now)
        if closed is not None:
            raise closed
        if now - self._swept > SWEEP_SECONDS:
            self._sweep(now)
        counters = self._counters.get((key.id, route))
        if counters is None:
            counters = self._counters[(key.id, route)] = _Counters()
        counters.prune(now)
        usage = Usage(
            now,
            rpm_used=len(counters.requests),
            rpm_oldest=counters.requests[0] if counters.requests else now,
            rpd_used=counters.today,
            tokens_used=counters.token_sum,
            tokens_oldest=counters.tokens[0][0] if counters.tokens else now,
        )
        refused = self._check(lim, counters, usage)
        if refused is not None:
            usage.refused, usage.retry_after = refused
            raise refusal(eff, usage)
        if lim.rpm is not None:
            counters.requests.append(now)
            usage.rpm_used += 1
            usage.rpm_oldest = counters.requests[0]
        if lim.rpd is not None:
            counters.today += 1
            usage.rpd_used += 1
        counters.inflight += 1
        return LocalLease(counters, headers(lim, usage))

    @staticmethod
    def _check(lim: RouteLimits, c: _Counters, usage: Usage) -> tuple[str, float] | None:
        """The limit hit with the longest wait, if any."""
        now = usage.now
        hits: list[tuple[float, str]] = []
        if lim.rpm is not None and len(c.requests) >= lim.rpm:
            hits.append((c.requests[len(c.requests) - lim.rpm] + WINDOW - now, "rpm"))
        if lim.rpd is not None and c.today >= lim.rpd:
            hits.append(((c.day + 1) * DAY - now, "rpd"))
        if lim.tpm is not None and c.token_sum >= lim.tpm:
            hits.append((_tokens_retry(c, lim.tpm, now), "tpm"))
        if lim.concurrency is not None and c.inflight >= lim.concurrency:
            hits.append((1.0, "concurrency"))
        if not hits:
            return None
        wait, name = max(hits)
        return name, wait

    async def record_tokens(self, key: KeyRecord, route: str, tokens: int) -> None:
        self.record_now(key, route, tokens)

    def record_now(self, key: KeyRecord, route: str, tokens: int) -> None:
        if tokens <= 0 or self.effective(key, route).limits.tpm is None:
            return
        now = self.clock()
        counters = self._counters.get((key.id, route))
        if counters is None:
            counters = self._counters[(key.id, route)] = _Counters()
        counters.prune(now)
        counters.tokens.append((now, tokens))
        counters.token_sum += tokens

    def _sweep(self, now: float) -> None:
        """Forget keys with nothing left to count, so idle keys cost no memory."""
        self._swept = now
        for name, counters in list(self._counters.items()):
            counters.prune(now)
            if counters.idle:
                del self._counters[name]

    async def close(self) -> None:
        self._counters.clear()
