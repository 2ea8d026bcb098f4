"""What the SQLite and PostgreSQL ledgers share: every step as a plan, each run by the store's
own group commit and statements dialect."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import orjson

from faregate.billing import holds
from faregate.billing.bounds import MAX_AMOUNT
from faregate.billing.steps import Plan, all_rows, n, one
from faregate.billing.store import (
    KEY_COLUMNS,
    BalanceView,
    HoldTicket,
    IdemClaim,
    SpendLimited,
    SpendWindow,
    StoredResult,
    claim_of,
    key_record,
    ledger_detail,
    new_id,
    now_ms,
    release_detail,
    spend_of,
)
from faregate.billing.types import KeyRecord, Settlement

T = TypeVar("T")

FIND_KEY = (
    f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id"
    " WHERE k.key_hash = ?"
)
BALANCE_VIEW = (
    "SELECT a.balance, COALESCE(SUM(h.amount), 0), COUNT(h.id) FROM accounts a"
    " LEFT JOIN holds h ON h.account_id = a.id AND h.status = 'open'"
    " WHERE a.id = ? GROUP BY a.id"
)
INSTANCE = "INSERT INTO instances (id, started_at, heartbeat_at) VALUES (?, ?, ?)"
HEARTBEAT = INSTANCE + " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
REAPABLE = (
    "SELECT id, account_id, key_id, amount, model, spend_windows FROM holds"
    " WHERE status = 'open' AND owner IS NULL"
    " AND (expires_at < ? OR (instance_id != ? AND instance_id NOT IN"
    " (SELECT id FROM instances WHERE heartbeat_at >= ?)))"
)
IDEM_EXPIRED = (
    "DELETE FROM idempotency WHERE key_id = ? AND idem_key = ? AND (expires_at < ?"
    " OR (state = 'running' AND created_at < ?))"
)
IDEM_INSERT = (
    "INSERT INTO idempotency (key_id, idem_key, body_hash, state, created_at,"
    " expires_at) VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT DO NOTHING"
)
IDEM_ROW = (
    "SELECT body_hash, state, status, headers, body FROM idempotency"
    " WHERE key_id = ? AND idem_key = ?"
)
IDEM_DONE = (
    "UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ?"
    " WHERE key_id = ? AND idem_key = ?"
)
IDEM_FORGET = "DELETE FROM idempotency WHERE key_id = ? AND idem_key = ?"


class GroupLedger:
    """Keys, holds, settlement, idempotency and crash recovery, written once. A store supplies
    `step` (a money step in its group commit), `write` and `read`; `overlaps` says whether a
    hold may go ahead of its commit (the store then resolves `durable` at the commit). A hold
    without spend windows, and a close that gives back (no overrun) without them, are a single
    gated statement each and are marked `single`."""

    instance_id: str
    overlaps = False

    def step(
        self,
        account_id: str,
        plan: Plan[Any],
        durable: asyncio.Future[None] | None = None,
        *,
        single: bool = False,
    ) -> asyncio.Future[Any]:
        """Run `plan` in the group commit; `single`: the plan runs exactly one statement (a
        database with several writers may then run it alone, atomic without a transaction)."""
        raise NotImplementedError

    async def write(self, plan: Plan[T]) -> T:
        raise NotImplementedError

    async def read(self, plan: Plan[T]) -> T:
        raise NotImplementedError

    def run(self, account_id: str, plan: Plan[T]) -> asyncio.Future[T]:
        """Run a plan as a money step, in the next group commit (in `account_id`'s place of the
        lock order where the database has several writers)."""
        return self.step(account_id, plan)

    # -- reads -----------------------------------------------------------------------

    async def find_key(self, key_hash: str) -> KeyRecord | None:
        row = await self.read(_one(FIND_KEY, key_hash))
        return None if row is None else key_record(row)

    async def balance(self, account_id: str) -> BalanceView:
        row = await self.read(_one(BALANCE_VIEW, account_id))
        if row is None:
            return BalanceView(0, 0, 0)
        return BalanceView(int(row[0]), int(row[1]), int(row[2]))

    # -- the three money steps ---------------------------------------------------------

    async def hold(
        self,
        *,
        account_id: str,
        key_id: str | None,
        amount: int,
        model: str,
        request_id: str,
        ttl_ms: int,
        spend: tuple[SpendWindow, ...] = (),
        overlap: bool = False,
    ) -> HoldTicket | None:
        if amount > MAX_AMOUNT:  # above any balance: refused before SQL binds it
            return None
        durable: asyncio.Future[None] | None = (
            asyncio.get_running_loop().create_future() if overlap and self.overlaps else None
        )
        ticket = HoldTicket(
            new_id("hold"), account_id, key_id, amount, model, tuple(w.ref for w in spend), durable
        )
        ts = now_ms()
        plan = holds.take(
            ticket,
            spend,
            request_id=request_id,
            instance_id=self.instance_id,
            ts=ts,
            expires_at=ts + ttl_ms,
            owner=None,  # the request
        )
        outcome = await self.step(account_id, plan, durable, single=not spend)
        if isinstance(outcome, SpendLimited):
            raise outcome
        return ticket if outcome else None

    # Settle and release return the batch's future itself: shielding it starts no task.

    def settle(self, ticket: HoldTicket, settlement: Settlement) -> asyncio.Future[bool]:
        cost, refund = settlement.cost, ticket.amount - settlement.cost
        detail = ledger_detail(settlement)
        plan = holds.close(ticket, "settled", cost, refund, detail, now_ms())
        return self.step(ticket.account_id, plan, single=refund >= 0 and not ticket.spend)

    def release(self, ticket: HoldTicket, note: str) -> asyncio.Future[bool]:
        detail = release_detail(note)
        plan = holds.close(ticket, "released", 0, ticket.amount, detail, now_ms())
        return self.step(ticket.account_id, plan, single=not ticket.spend)

    # -- idempotency keys --------------------------------------------------------------

    async def idem_claim(
        self, key_id: str, idem_key: str, body_hash: str, ttl_ms: int, running_ms: int
    ) -> IdemClaim:
        ts = now_ms()

        def plan() -> Plan[IdemClaim]:
            yield n(IDEM_EXPIRED, key_id, idem_key, ts, ts - running_ms)
            if (yield n(IDEM_INSERT, key_id, idem_key, body_hash, ts, ts + ttl_ms)) == 1:
                return "claimed"
            return claim_of((yield one(IDEM_ROW, key_id, idem_key)), body_hash)

        result: IdemClaim = await self.step(key_id, plan())
        return result

    async def idem_finish(self, key_id: str, idem_key: str, result: StoredResult) -> None:
        headers = orjson.dumps(result.headers).decode()
        await self.write(_count(IDEM_DONE, result.status, headers, result.body, key_id, idem_key))

    async def idem_forget(self, key_id: str, idem_key: str) -> None:
        await self.write(_count(IDEM_FORGET, key_id, idem_key))

    # -- crash recovery --------------------------------------------------------------

    async def heartbeat(self) -> None:
        # An upsert: a process wrongly taken for dead (a long stall) comes back to life.
        ts = now_ms()
        await self.write(_count(HEARTBEAT, self.instance_id, ts, ts))

    async def reap(self, *, stale_ms: int) -> int:
        ts = now_ms()
        rows = await self.read(_all(REAPABLE, ts, self.instance_id, ts - stale_ms))
        released = 0
        for row in rows:
            ticket = HoldTicket(row[0], row[1], row[2], int(row[3]), row[4] or "", spend_of(row[5]))
            released += await self.release(ticket, "reaped: hold expired or its process died")
        await self.write(
            _count(
                "DELETE FROM instances WHERE heartbeat_at < ? AND id != ?",
                ts - stale_ms,
                self.instance_id,
            )
        )
        await self.write(_count("DELETE FROM idempotency WHERE expires_at < ?", ts))
        return released


def _count(sql: str, *args: Any) -> Plan[int]:
    return (yield n(sql, *args))  # type: ignore[no-any-return]


def _one(sql: str, *args: Any) -> Plan[tuple[Any, ...] | None]:
    return (yield one(sql, *args))  # type: ignore[no-any-return]


def _all(sql: str, *args: Any) -> Plan[list[tuple[Any, ...]]]:
    return (yield all_rows(sql, *args))  # type: ignore[no-any-return]
