"""What the hot path asks of the database, by concern: keys, ledger, idempotency, usage log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from faregate.billing.steps import StepRunner
from faregate.billing.types import KeyRecord, Settlement, Units
from faregate.errors import InsufficientBalance, ServiceUnavailable
from faregate.ids import random_hex


class LedgerUnavailable(ServiceUnavailable):
    """The database could not record a money step: money fails closed."""

    code = "ledger_unavailable"

    @classmethod
    def wrap(cls, exc: Exception) -> Exception:
        if isinstance(exc, ServiceUnavailable):
            return exc
        err = cls("The ledger is unavailable; retry shortly.", retry_after=5)
        err.__cause__ = exc
        return err


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id(prefix: str) -> str:
    return f"{prefix}_{random_hex(10)}"


USAGE_COLUMNS = (
    "at",
    "request_id",
    "key_id",
    "account_id",
    "route",
    "model",
    "deployment",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_ms",
    "status",
    "cached",
    "estimated",
    "units",
    "guard",
)

KEY_COLUMNS = (
    "k.id, k.account_id, k.allowed_models, k.expires_at, k.revoked_at, a.plan, a.limits,"
    " k.limits, k.restrictions, k.spend_limit, k.spend_period, a.spend_limit, a.spend_period,"
    " a.restrictions, k.guards"
)
"""The columns `key_record` reads, from `api_keys k JOIN accounts a`."""


def key_record(row: Any) -> KeyRecord:
    def parsed(value: Any) -> Any:
        return orjson.loads(value) if value else None

    models = parsed(row[2])
    return KeyRecord(
        id=row[0],
        account_id=row[1],
        allowed_models=frozenset(models) if models else None,
        expires_at=row[3],
        revoked=row[4] is not None,
        plan=row[5],
        account_limits=parsed(row[6]),
        key_limits=parsed(row[7]),
        restrictions=parsed(row[8]),
        key_spend=(int(row[9]), str(row[10])) if row[9] is not None else None,
        account_spend=(int(row[11]), str(row[12])) if row[11] is not None else None,
        account_restrictions=parsed(row[13]),
        guards=parsed(row[14]),
    )


@dataclass(frozen=True, slots=True)
class HoldTicket:
    """An open hold as the request that took it knows it."""

    id: str
    account_id: str
    key_id: str | None
    amount: int
    model: str
    spend: tuple[tuple[str, str, str], ...] = ()  # (scope, scope id, period) windows it counts in
    durable: asyncio.Future[None] | None = field(default=None, compare=False, repr=False)
    """Done once the hold is on disk, or failed (LedgerUnavailable) if its commit failed and
    the hold never existed. None: the hold was on disk before the ticket was handed out."""


@dataclass(frozen=True, slots=True)
class SpendWindow:
    """A spend limit in force for one period: the hold must fit under `limit`."""

    scope: str  # key | account
    scope_id: str
    period: str  # e.g. D2026-11-21, W2026-47, M2026-11 (UTC)
    limit: int

    @property
    def ref(self) -> tuple[str, str, str]:
        return (self.scope, self.scope_id, self.period)


class SpendLimited(InsufficientBalance):
    """402 like an empty balance, but for a spending limit (a different code and message)."""

    code = "spending_limit_reached"


def spend_refusal(window: SpendWindow, amount: int, spent: int) -> SpendLimited:
    what = "API key" if window.scope == "key" else "account"
    return SpendLimited(
        f"Spending limit reached: this {what} may spend {window.limit} micro-credits in "
        f"{window.period[1:]}; {spent} are spent or held and this request may cost up to {amount}."
    )


def spend_of(value: Any) -> tuple[tuple[str, str, str], ...]:
    """The spend windows stored with a hold row."""
    return tuple((str(a), str(b), str(c)) for a, b, c in orjson.loads(value)) if value else ()


def units_json(units: Units) -> str | None:
    """The units column: a JSON object {meter: count}, NULL when only tokens were counted."""
    return orjson.dumps(dict(units)).decode() if units else None


def ledger_detail(s: Settlement) -> tuple[Any, ...]:
    """A settlement's ledger columns after the cost: tokens, estimated, units, note."""
    return (
        s.prompt_tokens,
        s.completion_tokens,
        s.cached_tokens,
        s.reasoning_tokens,
        s.estimated,
        units_json(s.units),
        s.note,
    )


def release_detail(note: str) -> tuple[Any, ...]:
    """A release's ledger columns after the cost: nothing counted, the note."""
    return (None, None, None, None, False, None, note)


@dataclass(frozen=True, slots=True)
class BalanceView:
    balance: int
    held: int
    open_holds: int


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A finished request's reply, kept for replays under its Idempotency-Key."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


IdemClaim = StoredResult | Literal["claimed", "running", "mismatch"]


def claim_of(row: Any, body_hash: str) -> IdemClaim:
    """What an existing idempotency row means for a new request with `body_hash`."""
    if row is None:  # removed between the insert and the read: let the caller run it
        return "claimed"
    if row[0] != body_hash:
        return "mismatch"
    if row[1] != "done":
        return "running"
    headers = [(str(k), str(v)) for k, v in orjson.loads(row[3])]
    return StoredResult(int(row[2]), headers, bytes(row[4]))


def overrun(
    ticket: HoldTicket, cost: int, balance: int, detail: tuple[Any, ...]
) -> tuple[int, int, tuple[Any, ...]]:
    """A cost above the hold: take the excess from the balance as far as it goes, never below
    zero; what could not be collected is written in the note. (cost, refund, detail)."""
    excess = cost - ticket.amount
    collected = min(excess, max(balance, 0))
    note = f"cost {cost} exceeded the hold of {ticket.amount}"
    if collected < excess:
        note += f"; {excess - collected} could not be collected"
    return ticket.amount + collected, -collected, (*detail[:-1], note)


class KeyStore(Protocol):
    """API keys as the request path reads them."""

    async def find_key(self, key_hash: str) -> KeyRecord | None: ...


class Ledger(Protocol):
    """Balances and holds.

    Every write is one of three atomic steps: a hold (conditional debit of the
    worst case), a settle (the hold closes, the unused part is refunded) or a
    release (the hold closes, all of it is refunded). Closing a hold is
    conditional on it being open, so each hold ends exactly once.
    """

    instance_id: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

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
        """Debit `amount` if the balance covers it and it fits every spend window; None when
        the balance does not cover it, `SpendLimited` raised when a window is full.

        With `overlap`, a store may hand out the ticket once the debit is made under its write
        lock and finish the commit while the caller's upstream call is under way; the ticket's
        `durable` then tells when the hold is on disk (or that it never got there)."""
        ...

    def settle(self, ticket: HoldTicket, settlement: Settlement) -> Awaitable[bool]:
        """Close the hold at its actual cost; False if it was already closed. Any awaitable:
        a store that returns a future lets callers shield it without starting a task."""
        ...

    def release(self, ticket: HoldTicket, note: str) -> Awaitable[bool]:
        """Close the hold charging nothing; False if it was already closed."""
        ...

    async def balance(self, account_id: str) -> BalanceView: ...

    async def heartbeat(self) -> None: ...

    async def reap(self, *, stale_ms: int) -> int:
        """Release request holds past their expiry or left by an instance that stopped
        beating. Holds owned by a job are never reaped (billing/jobs.py)."""
        ...


class IdempotencyStore(Protocol):
    """Idempotency-Key claims and the results kept for replays."""

    async def idem_claim(
        self, key_id: str, idem_key: str, body_hash: str, ttl_ms: int, running_ms: int
    ) -> IdemClaim:
        """Claim an Idempotency-Key for a new run ("claimed"), or report that it is running,
        was used with another body ("mismatch"), or finished (its stored result). A claim still
        "running" after `running_ms` was left by a process that died: it is claimed afresh."""
        ...

    async def idem_finish(self, key_id: str, idem_key: str, result: StoredResult) -> None: ...

    async def idem_forget(self, key_id: str, idem_key: str) -> None:
        """Drop a claim whose run failed in a way worth retrying."""
        ...


class UsageLog(Protocol):
    """The usage log's writes (reporting only; the ledger is the record of money)."""

    async def write_usage(self, rows: list[tuple[Any, ...]]) -> None:
        """Append usage-log rows (`USAGE_COLUMNS` order) in one transaction."""
        ...


class Store(KeyStore, Ledger, IdempotencyStore, UsageLog, StepRunner, Protocol):
    """Everything the app asks of its database; the jobs concern is `billing.jobs.Jobs`
    over the same store."""
