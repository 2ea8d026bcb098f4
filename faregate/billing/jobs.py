"""Asynchronous jobs (video generation): the job row, the hold it owns, and its single
terminal transition, which settles or releases that hold in the same transaction.

A job's hold (`holds.owner = 'job'`) has no process and no expiry the reaper looks at: it
ends only through `finish_job` (settled at the units billed) or `fail_job` (released). The
transition is a conditional UPDATE on the job's state in one transaction with the hold's
close, so with any number of callers in any number of processes exactly one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from faregate.billing import holds
from faregate.billing.steps import Plan, StepRunner, all_rows, n, one
from faregate.billing.store import (
    HoldTicket,
    SpendLimited,
    SpendWindow,
    ledger_detail,
    new_id,
    now_ms,
    release_detail,
    spend_of,
)
from faregate.billing.types import Settlement

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
DELETED = "deleted"  # a finished job its owner deleted: gone for clients, kept for the ledger
ACTIVE = (QUEUED, RUNNING)
JOB_OWNER = "job"
NO_EXPIRY = 2**62  # a job's hold row: `expires_at` is not its end (its job's is)


class TooManyJobs(Exception):
    """The account already has as many jobs in flight as its limit allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} jobs in flight")
        self.limit = limit


_ACTIVE_SQL = "state IN ('queued', 'running')"
_COLUMNS = (
    "id, account_id, key_id, model, kind, surface, state, upstream_id, deployment, request,"
    " hold_id, amount, lease_owner, lease_expires_at, next_poll_at, polls, result, error,"
    " created_at, updated_at, finished_at"
)
_INSERT = (
    f"INSERT INTO jobs ({_COLUMNS}) VALUES"
    " (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?, ?, NULL)"
)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    account_id: str
    key_id: str | None
    model: str
    kind: str
    surface: str
    state: str
    upstream_id: str | None
    deployment: str | None
    request: Any  # the JSON stored at creation
    hold_id: str
    amount: int
    lease_owner: str | None
    lease_expires_at: int | None
    next_poll_at: int
    polls: int
    result: Any  # JSON, once finished
    error: str | None
    created_at: int
    updated_at: int
    finished_at: int | None

    @property
    def finished(self) -> bool:
        return self.state not in ACTIVE


def _job(row: tuple[Any, ...]) -> Job:
    values = list(row)
    values[9] = orjson.loads(values[9])
    values[16] = orjson.loads(values[16]) if values[16] is not None else None
    for i in (11, 14, 15, 18, 19):
        values[i] = int(values[i])
    return Job(*values)


class JobStore(Protocol):
    """The jobs concern of the ledger."""

    async def create_job(
        self,
        *,
        account_id: str,
        key_id: str | None,
        model: str,
        kind: str,
        surface: str,
        request: Any,
        amount: int,
        spend: tuple[SpendWindow, ...] = (),
        next_poll_at: int | None = None,
        lease: tuple[str, int] | None = None,
        max_active: int | None = None,
    ) -> Job | None: ...

    async def lease_due(self, owner: str, limit: int, lease_ms: int) -> list[Job]: ...

    async def renew(self, job_id: str, owner: str, lease_ms: int) -> bool: ...

    async def update_progress(
        self,
        job_id: str,
        owner: str,
        *,
        state: str,
        next_poll_at: int,
        upstream_id: str | None = None,
        deployment: str | None = None,
    ) -> bool: ...

    async def finish_job(self, job_id: str, settlement: Settlement, result: Any = None) -> bool: ...

    async def fail_job(self, job_id: str, note: str) -> bool: ...

    async def get_job(self, job_id: str, account_id: str) -> Job | None: ...


class Jobs:
    """`JobStore` over either ledger: every write is a plan in the ledger's group commit."""

    def __init__(self, ledger: StepRunner) -> None:
        self._ledger = ledger

    async def create_job(
        self,
        *,
        account_id: str,
        key_id: str | None,
        model: str,
        kind: str,
        surface: str,
        request: Any,
        amount: int,
        spend: tuple[SpendWindow, ...] = (),
        next_poll_at: int | None = None,
        lease: tuple[str, int] | None = None,
        max_active: int | None = None,
    ) -> Job | None:
        """The job row and its hold of `amount`, taken together: None when the balance does
        not cover it, `SpendLimited` raised when a spend window is full, `TooManyJobs` when
        the account already has `max_active` jobs in flight (counted under the account's
        lock). `lease` (owner, milliseconds) hands the new job to its creator for its first
        steps."""
        if amount < 0:
            raise ValueError("a hold cannot be negative")
        ts = now_ms()
        job_id = new_id("job")
        ticket = HoldTicket(
            new_id("hold"), account_id, key_id, amount, model, tuple(w.ref for w in spend)
        )
        owner, lease_until = (lease[0], ts + lease[1]) if lease else (None, None)
        body = orjson.dumps(request).decode()

        def plan() -> Plan[Job | bool | SpendLimited | TooManyJobs]:
            if max_active is not None:
                yield one(holds.BALANCE, account_id, lock="update")
                active = yield one(
                    f"SELECT COUNT(*) FROM jobs WHERE account_id = ? AND {_ACTIVE_SQL}", account_id
                )
                if int(active[0]) >= max_active:
                    return TooManyJobs(max_active)
            taken = yield from holds.take(
                ticket,
                spend,
                request_id=job_id,
                instance_id=job_id,
                ts=ts,
                expires_at=NO_EXPIRY,
                owner=JOB_OWNER,
            )
            if taken is not True:
                return taken
            yield n(
                _INSERT,
                job_id,
                account_id,
                key_id,
                model,
                kind,
                surface,
                QUEUED,
                body,
                ticket.id,
                amount,
                owner,
                lease_until,
                ts if next_poll_at is None else next_poll_at,
                ts,
                ts,
            )
            row = yield one(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", job_id)
            return _job(row)

        outcome = await self._ledger.run(account_id, plan())
        if isinstance(outcome, SpendLimited | TooManyJobs):
            raise outcome
        return outcome if isinstance(outcome, Job) else None

    async def lease_due(self, owner: str, limit: int, lease_ms: int) -> list[Job]:
        """Up to `limit` active jobs due for a poll and not leased by a live owner, leased to
        `owner` for `lease_ms` (their poll count goes up). On PostgreSQL, rows another
        process is leasing are skipped, not waited for."""
        ts = now_ms()

        def plan() -> Plan[list[Job]]:
            due = yield all_rows(
                f"SELECT id FROM jobs WHERE {_ACTIVE_SQL} AND next_poll_at <= ?"
                " AND (lease_owner IS NULL OR lease_expires_at < ?)"
                " ORDER BY next_poll_at, id LIMIT ?",
                ts,
                ts,
                limit,
                lock="skip",
            )
            leased = []
            for (job_id,) in due:
                yield n(
                    "UPDATE jobs SET lease_owner = ?, lease_expires_at = ?, polls = polls + 1,"
                    " updated_at = ? WHERE id = ?",
                    owner,
                    ts + lease_ms,
                    ts,
                    job_id,
                )
                leased.append(
                    _job((yield one(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", job_id)))
                )
            return leased

        return await self._ledger.write(plan())

    async def renew(self, job_id: str, owner: str, lease_ms: int) -> bool:
        """Extend `owner`'s lease; False when it lost it or the job is over."""
        ts = now_ms()
        return bool(
            await self._ledger.write(
                _count(
                    "UPDATE jobs SET lease_expires_at = ?, updated_at = ?"
                    f" WHERE id = ? AND lease_owner = ? AND {_ACTIVE_SQL}",
                    ts + lease_ms,
                    ts,
                    job_id,
                    owner,
                ),
            )
        )

    async def update_progress(
        self,
        job_id: str,
        owner: str,
        *,
        state: str,
        next_poll_at: int,
        upstream_id: str | None = None,
        deployment: str | None = None,
    ) -> bool:
        """Record a poll by the lease's owner: the (still active) state, when to poll next, and
        the upstream's id and deployment once known. The lease ends with it. False when
        `owner` does not hold the lease or the job is over."""
        if state not in ACTIVE:
            raise ValueError(f"a job ends through finish_job or fail_job, not state {state!r}")
        return bool(
            await self._ledger.write(
                _count(
                    "UPDATE jobs SET state = ?, next_poll_at = ?,"
                    " upstream_id = COALESCE(?, upstream_id), deployment = COALESCE(?, deployment),"
                    " lease_owner = NULL, lease_expires_at = NULL, updated_at = ?"
                    f" WHERE id = ? AND lease_owner = ? AND {_ACTIVE_SQL}",
                    state,
                    next_poll_at,
                    upstream_id,
                    deployment,
                    now_ms(),
                    job_id,
                    owner,
                ),
            )
        )

    async def finish_job(self, job_id: str, settlement: Settlement, result: Any = None) -> bool:
        """The job succeeded: its hold settles at `settlement` (its units billed). True for
        the one call that ended the job, False for every other (and for an unknown job)."""
        detail = ledger_detail(settlement)
        return await self._end(job_id, SUCCEEDED, "settled", settlement.cost, detail, result, None)

    async def fail_job(self, job_id: str, note: str) -> bool:
        """The job failed: its hold is released in full. True for the one call that ended it."""
        return await self._end(job_id, FAILED, "released", 0, release_detail(note), None, note)

    async def _end(
        self,
        job_id: str,
        state: str,
        status: str,
        cost: int,
        detail: tuple[Any, ...],
        result: Any,
        error: str | None,
    ) -> bool:
        found = await self._ledger.read(_one("SELECT account_id FROM jobs WHERE id = ?", job_id))
        if found is None:
            return False
        account_id = str(found[0])
        body = orjson.dumps(result).decode() if result is not None else None

        def plan() -> Plan[bool]:
            ts = now_ms()
            # The account first, then the job: every step locks an account before its rows.
            yield one(holds.BALANCE, account_id, lock="update")
            ended = yield n(
                "UPDATE jobs SET state = ?, result = ?, error = ?, finished_at = ?,"
                " updated_at = ?, lease_owner = NULL, lease_expires_at = NULL"
                f" WHERE id = ? AND {_ACTIVE_SQL}",
                state,
                body,
                error,
                ts,
                ts,
                job_id,
            )
            if ended != 1:
                return False
            row = yield one(
                "SELECT h.id, h.account_id, h.key_id, h.amount, h.model, h.spend_windows"
                " FROM holds h JOIN jobs j ON j.hold_id = h.id WHERE j.id = ?",
                job_id,
            )
            ticket = HoldTicket(row[0], row[1], row[2], int(row[3]), row[4] or "", spend_of(row[5]))
            refund = ticket.amount - cost if status == "settled" else ticket.amount
            yield from holds.close(ticket, status, cost, refund, detail, ts)
            return True

        return await self._ledger.run(account_id, plan())

    async def get_job(self, job_id: str, account_id: str) -> Job | None:
        """The job, if it belongs to `account_id` (None for anyone else's)."""
        row = await self._ledger.read(
            _one(f"SELECT {_COLUMNS} FROM jobs WHERE id = ? AND account_id = ?", job_id, account_id)
        )
        return None if row is None else _job(row)

    async def list_jobs(
        self,
        *,
        account_id: str | None,
        limit: int,
        after: str | None = None,
        newest_first: bool = True,
        state: str | None = None,
        kind: str | None = None,
    ) -> list[Job]:
        """Jobs (of one account, or of all when None), newest first or oldest first, after the
        job `after` in that order; deleted jobs only when asked for by state."""
        where = ["state <> ?" if state is None else "state = ?"]
        args: list[Any] = [state or DELETED]
        if account_id is not None:
            where.append("account_id = ?")
            args.append(account_id)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        order = "DESC" if newest_first else "ASC"
        if after is not None:
            row = await self._ledger.read(_one("SELECT created_at FROM jobs WHERE id = ?", after))
            if row is None:
                return []
            cmp = "<" if newest_first else ">"
            where.append(f"(created_at {cmp} ? OR (created_at = ? AND id {cmp} ?))")
            args += [int(row[0]), int(row[0]), after]
        sql = (
            f"SELECT {_COLUMNS} FROM jobs WHERE {' AND '.join(where)}"
            f" ORDER BY created_at {order}, id {order} LIMIT ?"
        )
        rows = await self._ledger.read(_rows(sql, *args, limit))
        return [_job(r) for r in rows]

    async def delete_job(self, job_id: str, account_id: str) -> bool:
        """Mark the account's finished job deleted; False when it is active or not theirs."""
        return bool(
            await self._ledger.write(
                _count(
                    "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ? AND account_id = ?"
                    f" AND state IN ('{SUCCEEDED}', '{FAILED}')",
                    DELETED,
                    now_ms(),
                    job_id,
                    account_id,
                )
            )
        )

    async def find_job(self, job_id: str) -> Job | None:
        """Any account's job (for the operator)."""
        row = await self._ledger.read(_one(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", job_id))
        return None if row is None else _job(row)


def _rows(sql: str, *args: Any) -> Plan[list[tuple[Any, ...]]]:
    return (yield all_rows(sql, *args))  # type: ignore[no-any-return]


def _count(sql: str, *args: Any) -> Plan[int]:
    return (yield n(sql, *args))  # type: ignore[no-any-return]


def _one(sql: str, *args: Any) -> Plan[tuple[Any, ...] | None]:
    return (yield one(sql, *args))  # type: ignore[no-any-return]
