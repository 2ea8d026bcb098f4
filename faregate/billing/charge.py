"""A hold as a context manager: settle it inside the block, or leaving the block releases it."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from faregate.billing.store import HoldTicket, LedgerUnavailable, Store
from faregate.billing.types import Settlement

log = logging.getLogger("faregate.billing")


class Charge:
    """The open hold of one request. Exactly one of settle or release closes it; an
    exception, a cancellation or a forgotten settle leaves the block released."""

    __slots__ = ("_closed", "cost", "store", "ticket")

    def __init__(self, store: Store, ticket: HoldTicket) -> None:
        self.store = store
        self.ticket = ticket
        self.cost: int | None = None
        self._closed = False

    async def confirm(self) -> None:
        """Wait until the hold is on disk; LedgerUnavailable (and nothing left to close) if its
        commit failed. Whatever the upstream returned must not reach the client before this."""
        durable = self.ticket.durable
        if durable is None:
            return
        try:
            await asyncio.shield(durable)
        except LedgerUnavailable:
            self._closed = True
            self.cost = 0
            raise

    async def settle(self, settlement: Settlement) -> None:
        if self._closed:
            return
        await self.confirm()
        self._closed = True
        self.cost = settlement.cost
        # Shielded: a cancelled request still records what it spent.
        if not await asyncio.shield(self.store.settle(self.ticket, settlement)):
            log.warning(
                "hold %s was closed before its settlement (reaped after a stall?);"
                " %d micro-credits were not charged",
                self.ticket.id,
                settlement.cost,
            )

    async def release(self, note: str) -> None:
        if self._closed:
            return
        try:
            await self.confirm()
        except LedgerUnavailable:
            return  # the hold never reached the disk: nothing to give back
        self._closed = True
        self.cost = 0
        await asyncio.shield(self.store.release(self.ticket, note))

    async def __aenter__(self) -> Charge:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._closed:
            reason = (
                "request failed" if exc_type is None else f"request failed: {exc_type.__name__}"
            )
            await self.release(reason)
