"""What the balancer knows of each deployment: its breaker, cooldown, load and speed."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Collection
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


@dataclass(frozen=True, slots=True)
class SetAside:
    """Why and until when an upstream key is out of rotation."""

    until: float
    reason: str  # the failure class: credential | quota
    status: int | None = None  # the upstream's HTTP status that set it aside


@dataclass(slots=True)
class KeyPool:
    """A provider's upstream keys, rotated round robin. A key out of quota is set aside at once;
    a key the provider calls invalid only once that was seen on `needed` different requests
    within a window: the invalid-key error depends on the key alone, and one request counts
    once however often it retried, so no single request (or tenant) sets a key aside."""

    keys: tuple[str, ...]
    aside: dict[str, SetAside] = field(default_factory=dict)
    suspicions: dict[str, dict[str, float]] = field(default_factory=dict)
    """key -> id of each request that saw the invalid-key error -> when."""
    cursor: int = 0

    def pick(self, now: float, avoid: Collection[str] = ()) -> str | bool | None:
        """A usable key not in `avoid`; None for a keyless provider; False when none is left."""
        if not self.keys:
            return None
        for _ in range(len(self.keys)):
            key = self.keys[self.cursor % len(self.keys)]
            self.cursor += 1
            if self._free(key, now) and key not in avoid:
                return key
        return False

    def usable(self, now: float) -> bool:
        return not self.keys or any(self._free(k, now) for k in self.keys)

    def _free(self, key: str, now: float) -> bool:
        entry = self.aside.get(key)
        return entry is None or entry.until <= now

    def disable(
        self, key: str, until: float, reason: str = "quota", status: int | None = None
    ) -> None:
        entry = self.aside.get(key)
        if entry is None or entry.until < until:
            self.aside[key] = SetAside(until, reason, status)
        self.suspicions.pop(key, None)

    def suspect(self, key: str, request_id: str, now: float, needed: int, window: float) -> bool:
        """Count one request's invalid-key error; True once `needed` different requests saw it
        within `window` seconds (the count then starts over)."""
        seen = self.suspicions.setdefault(key, {})
        seen[request_id] = now
        for rid in [r for r, at in seen.items() if at < now - window]:
            del seen[rid]
        if len(seen) < needed:
            return False
        del self.suspicions[key]
        return True

    def vouch(self, key: str) -> None:
        """The key just served a request: earlier invalid-key errors were not about it."""
        self.suspicions.pop(key, None)

    def label(self, key: str) -> str:
        """How the key is shown (never the key): its 1-based place in the provider's list."""
        return f"#{self.keys.index(key) + 1}"

    def set_aside(self, now: float) -> list[tuple[str, SetAside]]:
        """(label, entry) of every key out of rotation now."""
        return [(self.label(k), e) for k, e in self.aside.items() if e.until > now]

    def suspected(self) -> list[tuple[str, int]]:
        """(label, requests that saw its invalid-key error) of keys not yet set aside."""
        return [(self.label(k), len(seen)) for k, seen in self.suspicions.items() if seen]
