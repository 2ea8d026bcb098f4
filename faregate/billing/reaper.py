"""Crash recovery: a heartbeat for this process and a reaper for holds nobody will close."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faregate.billing.store import Store
from faregate.config import Billing

log = logging.getLogger("faregate.reaper")

STALE_BEATS = 3
"""A process that missed this many heartbeats is taken for dead."""


class Reaper:
    """Beats every `heartbeat_seconds`; every `reaper_interval_seconds` releases the holds that
    expired or whose process stopped beating (a killed process leaves no money in limbo)."""

    def __init__(self, store: Store, billing: Billing) -> None:
        self._store = store
        self._billing = billing
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reap_once(self) -> int:
        stale_ms = int(self._billing.heartbeat_seconds * STALE_BEATS * 1000)
        released = await self._store.reap(stale_ms=stale_ms)
        if released:
            log.warning("released %d abandoned hold(s)", released)
        return released

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_reap = loop.time()
        while True:
            try:
                await self._store.heartbeat()
                if loop.time() >= next_reap:
                    await self.reap_once()
                    next_reap = loop.time() + self._billing.reaper_interval_seconds
            except Exception:
                log.exception("heartbeat or reaping failed; retrying")
            await asyncio.sleep(
                min(self._billing.heartbeat_seconds, self._billing.reaper_interval_seconds)
            )
