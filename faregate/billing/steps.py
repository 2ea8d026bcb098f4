"""Money steps written once for both ledgers: a step is a plan of statements (SQL with `?`
placeholders) that each store runs in its own group-committed transaction."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")


class Gated(str):
    """A statement whose first part decides the rest. Its text is PostgreSQL's single statement
    (data-modifying CTEs) returning that part's row count; on SQLite its `parts` run in order,
    the later ones only when the first changed exactly one row. Its placeholders are numbered,
    and each SQLite part takes the first `k` of the arguments."""

    postgres: str
    sqlite: tuple[tuple[str, int], ...]

    def __new__(cls, postgres: str, sqlite: tuple[tuple[str, int], ...]) -> Gated:
        self = super().__new__(cls, postgres)
        self.postgres = postgres  # asyncpg takes exact strings only
        self.sqlite = sqlite
        return self


class Query(NamedTuple):
    """One statement of a plan and what the plan wants back: the number of rows it changed
    (`n`), its first row or None (`one`), or every row (`all`); `many` runs it once for each
    tuple of arguments in `args` and gives back None; `gated` runs a `Gated` statement and
    gives back the row count of its first part."""

    sql: str
    args: tuple[Any, ...] = ()
    want: Literal["n", "one", "all", "many", "gated"] = "n"
    lock: Literal["", "update", "skip"] = ""
    """PostgreSQL only: the rows read are locked (`FOR UPDATE`), or locked and those locked by
    another transaction skipped (`FOR UPDATE SKIP LOCKED`). SQLite has one writer at a time."""


Plan = Generator[Query, Any, T]
"""A step: yields statements, receives their results, returns the step's outcome."""


_new = tuple.__new__


def n(sql: str, *args: Any) -> Query:
    return _new(Query, (sql, args, "n", ""))


def gated(sql: Gated, *args: Any) -> Query:
    return _new(Query, (sql, args, "gated", ""))


def one(sql: str, *args: Any, lock: Literal["", "update", "skip"] = "") -> Query:
    return Query(sql, args, "one", lock)


def many(sql: str, rows: list[tuple[Any, ...]]) -> Query:
    return Query(sql, tuple(rows), "many")


def all_rows(sql: str, *args: Any, lock: Literal["", "update", "skip"] = "") -> Query:
    return Query(sql, args, "all", lock)


_LOCKS = {"": "", "update": " FOR UPDATE", "skip": " FOR UPDATE SKIP LOCKED"}


def run_sqlite(conn: sqlite3.Connection, plan: Plan[T]) -> T:
    """Run `plan` on a SQLite connection (inside the caller's transaction)."""
    execute = conn.execute
    send = plan.send
    try:
        q = next(plan)
        while True:
            want = q.want
            if want == "n":
                q = send(execute(q.sql, q.args).rowcount)
            elif want == "gated":
                args = q.args
                parts = q.sql.sqlite  # type: ignore[attr-defined]
                sql, k = parts[0]
                count = execute(sql, args[:k]).rowcount
                if count == 1:
                    for sql, k in parts[1:]:
                        execute(sql, args[:k])
                q = send(count)
            elif want == "one":
                row = execute(q.sql, q.args).fetchone()
                q = send(None if row is None else tuple(row))
            elif want == "all":
                q = send([tuple(r) for r in execute(q.sql, q.args).fetchall()])
            else:
                conn.executemany(q.sql, q.args)
                q = send(None)
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
            if q.want == "gated":
                q = plan.send(await conn.fetchval(q.sql.postgres, *q.args))  # type: ignore[attr-defined]
                continue
            sql = pg_sql(q.sql) + _LOCKS[q.lock]
            if q.want == "n":
                status = await conn.execute(sql, *q.args)
                result: Any = int(status.rsplit(" ", 1)[-1])
            elif q.want == "one":
                row = await conn.fetchrow(sql, *q.args)
                result = None if row is None else tuple(row)
            elif q.want == "all":
                result = [tuple(r) for r in await conn.fetch(sql, *q.args)]
            else:
                result = await conn.executemany(sql, q.args)
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
