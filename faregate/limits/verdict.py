"""What a limiter saw for one request, as `X-RateLimit-*` headers and as a 429."""

from __future__ import annotations

import math
from dataclasses import dataclass

from faregate.errors import RateLimited
from faregate.limits.config import Effective, RouteLimits

DAY = 86_400.0
WINDOW = 60.0

CODES = {
    "rpm": "rate_limit_exceeded",
    "rpd": "requests_per_day_exceeded",
    "tpm": "tokens_per_minute_exceeded",
    "concurrency": "concurrency_exceeded",
}
UNITS = {
    "rpm": "requests per minute",
    "rpd": "requests per day",
    "tpm": "tokens per minute",
    "concurrency": "concurrent requests",
}


@dataclass(slots=True)
class Usage:
    """The counters of one key and route class at one instant (epoch seconds).

    `rpm_used` and `rpd_used` count this request when it was admitted; `rpm_oldest` and
    `tokens_oldest` are when the oldest entry of each window was counted (`now` if none)."""

    now: float
    rpm_used: int = 0
    rpm_oldest: float = 0.0
    rpd_used: int = 0
    tokens_used: int = 0
    tokens_oldest: float = 0.0
    refused: str | None = None  # the limit hit: rpm, rpd, tpm or concurrency
    retry_after: float = 0.0  # seconds until that limit admits again


def day_end(now: float) -> int:
    """The epoch second of the next UTC midnight."""
    return int((now // DAY + 1) * DAY)


def headers(limits: RouteLimits, usage: Usage) -> dict[str, str]:
    """Requests: the tightest of rpm and rpd (fewest remaining; on a tie the later reset).
    Reset is the UTC epoch second when Remaining next rises: the oldest request leaving the
    60 s window, or the next UTC midnight. Tokens: the tpm window, reset likewise (now when
    the window holds no tokens)."""
    out: dict[str, str] = {}
    candidates: list[tuple[int, int, int]] = []  # (remaining, reset, limit)
    if limits.rpm is not None:
        reset = math.ceil((usage.rpm_oldest if usage.rpm_used else usage.now) + WINDOW)
        candidates.append((max(0, limits.rpm - usage.rpm_used), reset, limits.rpm))
    if limits.rpd is not None:
        candidates.append((max(0, limits.rpd - usage.rpd_used), day_end(usage.now), limits.rpd))
    if candidates:
        remaining, reset, limit = min(candidates, key=lambda c: (c[0], -c[1]))
        if usage.refused in ("rpm", "rpd"):
            remaining = 0
        out["x-ratelimit-limit-requests"] = str(limit)
        out["x-ratelimit-remaining-requests"] = str(remaining)
        out["x-ratelimit-reset-requests"] = str(reset)
    if limits.tpm is not None:
        full = usage.tokens_oldest + WINDOW if usage.tokens_used else usage.now
        out["x-ratelimit-limit-tokens"] = str(limits.tpm)
        out["x-ratelimit-remaining-tokens"] = str(max(0, limits.tpm - usage.tokens_used))
        out["x-ratelimit-reset-tokens"] = str(math.ceil(full))
    return out


def refusal(effective: Effective, usage: Usage) -> RateLimited:
    """The 429 for a refused request: the limit hit, `Retry-After` (≥ 1 s) and the headers."""
    hit = usage.refused or "rpm"
    value = getattr(effective.limits, hit)
    message = f"Rate limit reached: {value} {UNITS[hit]} {effective.where()}."
    if hit == "rpd":
        message += " The daily count resets at 00:00 UTC."
    elif hit == "concurrency":
        message += " Retry when one of your requests has finished."
    err = RateLimited(message, code=CODES[hit], retry_after=max(1, math.ceil(usage.retry_after)))
    err.headers.update(headers(effective.limits, usage))
    return err


def blocked(effective: Effective, now: float) -> RateLimited | None:
    """The 429 for a route class a limit of 0 closes (no window can admit anything)."""
    lim = effective.limits
    waits = {"rpd": day_end(now) - now, "rpm": WINDOW, "tpm": WINDOW, "concurrency": WINDOW}
    for name, wait in waits.items():
        if getattr(lim, name) == 0:
            return refusal(effective, Usage(now, refused=name, retry_after=wait))
    return None
