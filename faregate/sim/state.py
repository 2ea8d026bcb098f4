"""Per-application simulator state: settings, request counters and fault counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(slots=True)
class SimState:
    """Mutable state shared by every handler of one simulator application."""

    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    video_ms: float = 200.0  # how long a simulated video job takes
    requests: int = 0
    by_model: Counter[str] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    fail_counts: Counter[str] = field(default_factory=Counter)

    def count_request(self, route: str) -> None:
        """Record one request to a protocol route (before any validation)."""
        self.requests += 1
        self.by_route[route] += 1

    def count_model(self, model: str) -> None:
        """Record the model a request asked for."""
        self.by_model[model] += 1

    def take_failure(self, key: str, times: int) -> bool:
        """Count one request under `key`; true while fewer than `times` preceded it."""
        seen = self.fail_counts[key]
        self.fail_counts[key] = seen + 1
        return seen < times

    def snapshot(self) -> dict[str, Any]:
        """The counters as the JSON object `GET /sim/stats` returns."""
        return {
            "requests": self.requests,
            "by_model": dict(self.by_model),
            "by_route": dict(self.by_route),
            "fail_counts": dict(self.fail_counts),
        }

    def reset(self) -> None:
        """Zero every counter, including the `fail_times` counters."""
        self.requests = 0
        self.by_model.clear()
        self.by_route.clear()
        self.fail_counts.clear()


STATE: web.AppKey[SimState] = web.AppKey("faregate_sim_state", SimState)
"""Where a simulator application keeps its `SimState`."""
