"""What the request path asks of the usage log: take a finished request's trace, never block."""

from __future__ import annotations

from typing import Protocol

from faregate.trace import Trace


class UsageSink(Protocol):
    def record(self, trace: Trace) -> None:
        """Queue the trace's row; returns at once (rows are written in batches)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Write what is queued, then stop."""
        ...
