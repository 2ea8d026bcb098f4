"""Spend limits: how much a key or an account may spend per day, week or month (UTC),
apart from its prepaid balance. Holds count in the current window and refunds leave it."""

from __future__ import annotations

import datetime as dt

from faregate.billing.store import SpendWindow
from faregate.billing.types import KeyRecord

PERIODS = ("daily", "weekly", "monthly")


def period_key(period: str, now: dt.datetime) -> str:
    """The window `now` falls in: D2026-11-21, W2026-47 (ISO week) or M2026-11."""
    day = now.astimezone(dt.UTC)
    if period == "daily":
        return f"D{day:%Y-%m-%d}"
    if period == "weekly":
        year, week, _ = day.isocalendar()
        return f"W{year}-{week:02d}"
    if period == "monthly":
        return f"M{day:%Y-%m}"
    raise ValueError(f"unknown spend period {period!r}; use one of {', '.join(PERIODS)}")


def windows(key: KeyRecord, now: dt.datetime | None = None) -> tuple[SpendWindow, ...]:
    """The spend windows a request of `key` must fit in (the key's, then its account's)."""
    if key.key_spend is None and key.account_spend is None:
        return ()
    now = now or dt.datetime.now(dt.UTC)
    out = []
    if key.key_spend is not None:
        limit, period = key.key_spend
        out.append(SpendWindow("key", key.id, period_key(period, now), limit))
    if key.account_spend is not None:
        limit, period = key.account_spend
        out.append(SpendWindow("account", key.account_id, period_key(period, now), limit))
    return tuple(out)
