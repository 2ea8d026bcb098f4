"""What one request did, filled in along the path; it becomes the request's usage-log row."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from faregate.ids import random_hex


def new_request_id() -> str:
    return "req_" + random_hex(12)


@dataclass(slots=True)
class Trace:
    route: str  # the route class: chat | embeddings | images | audio | video
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.monotonic)
    at_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    key_id: str | None = None
    account_id: str | None = None
    model: str | None = None
    deployment: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: int = 0
    cached: bool = False
    estimated: bool = False
    units: tuple[tuple[str, int], ...] = ()  # units billed beyond tokens: (meter, count)
    attempts: int = 0  # upstream attempts made for this request
    status: int = 0
    latency_ms: int = 0
    guard: str | None = None  # JSON: the guard and detector that refused the request

    def finish(self, status: int) -> None:
        self.status = status
        self.latency_ms = int((time.monotonic() - self.started) * 1000)


current: ContextVar[Trace | None] = ContextVar("faregate_trace", default=None)
"""The trace of the request this task serves (set by the app for each client request; the
pipeline fills it in wherever the request goes, streams included)."""


def request_id() -> str:
    """The current request's id, or a fresh one outside a request."""
    trace = current.get()
    return trace.request_id if trace is not None else new_request_id()
