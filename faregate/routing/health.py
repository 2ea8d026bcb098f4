"""What the balancer knows of each deployment: its breaker, cooldown, load and speed."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from faregate.config import Routing


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(slots=True)
class DeploymentHealth:
    """Breaker: opens after `breaker_failures` failures within the window; after the cooldown
    one probe may pass (half-open); its success closes the breaker, its failure reopens it
    with a doubled cooldown (capped). A rate limit cools the deployment down for the
    upstream's Retry-After without counting as a failure."""

    settings: Routing
    state: BreakerState = BreakerState.CLOSED
    failures: deque[float] = field(default_factory=deque)
    open_until: float = 0.0
    cooldown: float = 0.0
    cool_until: float = 0.0  # rate-limit cooldown
    probing: bool = False
    inflight: int = 0
    ewma_ms: float | None = None
    minute_start: float = 0.0
    minute_requests: int = 0
    minute_tokens: int = 0

    def available(self, now: float) -> bool:
        """May a request be sent now (a half-open breaker admits one probe at a time)?"""
        if now < self.cool_until:
            return False
        if self.state is BreakerState.OPEN:
            if now < self.open_until:
                return False
            self.state = BreakerState.HALF_OPEN
            self.probing = False
        if self.state is BreakerState.HALF_OPEN:
            return not self.probing
        return True

    def recovers_at(self, now: float, rpm: int | None = None, tpm: int | None = None) -> float:
        """When this deployment may take a request again (now, if it may already); a probe in
        flight or a full minute window count as busy until they can change."""
        at = max(self.cool_until, self.open_until if self.state is BreakerState.OPEN else 0.0)
        if self.state is BreakerState.HALF_OPEN and self.probing:
            at = max(at, now + self.settings.breaker_cooldown_seconds)
        full = (rpm is not None and self.minute_requests >= rpm) or (
            tpm is not None and self.minute_tokens >= tpm
        )
        if full and now - self.minute_start < 60.0:
            at = max(at, self.minute_start + 60.0)
        return max(at, now)

    def peek(self, now: float) -> bool:
        """`available`, without moving an open breaker to half-open."""
        if now < self.cool_until:
            return False
        if self.state is BreakerState.OPEN:
            return now >= self.open_until
        return not (self.state is BreakerState.HALF_OPEN and self.probing)

    def under_caps(self, now: float, rpm: int | None, tpm: int | None) -> bool:
        if now - self.minute_start >= 60.0:
            self.minute_start, self.minute_requests, self.minute_tokens = now, 0, 0
        if rpm is not None and self.minute_requests >= rpm:
            return False
        return tpm is None or self.minute_tokens < tpm

    def begin(self, tokens: int) -> None:
        self.inflight += 1
        self.minute_requests += 1
        self.minute_tokens += tokens
        if self.state is BreakerState.HALF_OPEN:
            self.probing = True

    def succeeded(self, latency_ms: float) -> None:
        self.inflight -= 1
        alpha = self.settings.latency_ewma_alpha
        self.ewma_ms = (
            latency_ms
            if self.ewma_ms is None
            else (alpha * latency_ms + (1 - alpha) * self.ewma_ms)
        )
        if self.state is not BreakerState.CLOSED:
            self.state = BreakerState.CLOSED
            self.cooldown = 0.0
        self.probing = False
        self.failures.clear()

    def failed(self, now: float) -> None:
        self.inflight -= 1
        s = self.settings
        if self.state is BreakerState.HALF_OPEN:
            self.cooldown = min(
                self.cooldown * 2 or s.breaker_cooldown_seconds, s.max_cooldown_seconds
            )
            self._open(now)
            return
        self.failures.append(now)
        while self.failures and self.failures[0] < now - s.breaker_window_seconds:
            self.failures.popleft()
        if len(self.failures) >= s.breaker_failures:
            self.cooldown = s.breaker_cooldown_seconds
            self._open(now)

    def released(self) -> None:
        """The attempt ended without a verdict on the deployment (the caller's fault)."""
        self.inflight -= 1
        if self.state is BreakerState.HALF_OPEN:
            self.probing = False

    def rate_limited(self, now: float, retry_after: float | None) -> None:
        self.inflight -= 1
        s = self.settings
        wait = retry_after if retry_after is not None else s.rate_limit_cooldown_seconds
        self.cool_until = max(self.cool_until, now + min(wait, s.max_cooldown_seconds))
        if self.state is BreakerState.HALF_OPEN:
            self.probing = False

    def _open(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self.open_until = now + self.cooldown
        self.probing = False
        self.failures.clear()


@dataclass(slots=True)
class KeyPool:
    """A provider's upstream keys, rotated round robin; a key the upstream refuses (credential)
    or that ran out of quota is set aside for a while."""

    keys: tuple[str, ...]
    disabled_until: dict[str, float] = field(default_factory=dict)
    cursor: int = 0

    def pick(self, now: float) -> str | bool | None:
        """A usable key; None for a keyless provider; False when every key is set aside."""
        if not self.keys:
            return None
        for _ in range(len(self.keys)):
            key = self.keys[self.cursor % len(self.keys)]
            self.cursor += 1
            if self.disabled_until.get(key, 0.0) <= now:
                return key
        return False

    def usable(self, now: float) -> bool:
        return not self.keys or any(self.disabled_until.get(k, 0.0) <= now for k in self.keys)

    def disable(self, key: str, until: float) -> None:
        self.disabled_until[key] = max(self.disabled_until.get(key, 0.0), until)
