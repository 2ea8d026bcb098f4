"""Money steps written once for both ledgers: a step is a plan of statements (SQL with `?`
placeholders) that each store runs in its own group-committed transaction."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Awaitable, Generator
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

import asyncpg

T = TypeVar("T")


class Query(NamedTuple):
    """One statement of a plan and what the plan wants back: the number of rows it changed
    (`n`), its first row or None (`one`), or every row (`all`)."""

    sql: str
    args: tuple[Any, ...] = ()
    want: Literal["n", "one", "all"] = "n"
    lock: Literal["", "update", "skip"] = ""
    """PostgreSQL only: the rows read are locked (`FOR UPDATE`), or locked and those locked by
    another transaction skipped (`FOR UPDATE SKIP LOCKED`). SQLite has one writer at a time."""


Plan = Generator[Query, Any, T]
"""A step: yields statements, receives their results, returns the step's outcome."""


def n(sql: str, *args: Any) -> Query:
    return Query(sql, args, "n")


def one(sql: str, *args: Any, lock: Literal["", "update", "skip"] = "") -> Query:
    return Query(sql, args, "one", lock)


def all_rows(sql: str, *args: Any, lock: Literal["", "update", "skip"] = "") -> Query:
    return Query(sql, args, "all", lock)


_LOCKS = {"": "", "update": " FOR UPDATE", "skip": " FOR UPDATE SKIP LOCKED"}


def run_sqlite(conn: sqlite3.Connection, plan: Plan[T]) -> T:
    """Run `plan` on a SQLite connection (inside the caller's transaction)."""
    try:
        q = next(plan)
        while True:
            cur = conn.execute(q.sql, q.args)
            if q.want == "n":
                result: Any = cur.rowcount
            elif q.want == "one":
                row = cur.fetchone()
                result = None if row is None else tuple(row)
            else:
                result = [tuple(r) for r in cur.fetchall()]
            q = plan.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=256)
def pg_sql(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...` (no plan puts a `?` in a literal)."""
    parts = sql.split("?")
    return "".join(
        part + (f"${i}" if i < len(parts) else "") for i, part in enumerate(parts, start=1)
    )


async def run_postgres(conn: asyncpg.Connection, plan: Plan[T]) -> T:
    """Run `plan` on an asyncpg connection (inside the caller's transaction)."""
    try:
        q = next(plan)
        while True:
            sql = pg_sql(q.sql) + _LOCKS[q.lock]
            if q.want == "n":
                status = await conn.execute(sql, *q.args)
                result: Any = int(status.rsplit(" ", 1)[-1])
            elif q.want == "one":
                row = await conn.fetchrow(sql, *q.args)
                result = None if row is None else tuple(row)
            else:
                result = [tuple(r) for r in await conn.fetch(sql, *q.args)]
            q = plan.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class StepRunner(Protocol):
    """A ledger that runs plans: money steps in its group commit, reads outside it."""

    def run(self, account_id: str, plan: Plan[T]) -> Awaitable[T]: ...

    async def write(self, plan: Plan[T]) -> T:
        """A step that changes no money (job rows): in its own short transaction where the
        database has several writers, so it never waits on an account lock while holding
        rows a money step may want."""
        ...

    async def read(self, plan: Plan[T]) -> T: ...
