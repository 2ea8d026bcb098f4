"""Money steps written once for both ledgers: a step is a plan of statements (SQL with `?`
placeholders) that each store runs in its own group-committed transaction."""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")


class Gated(str):
    """A statement whose first part decides the rest. On PostgreSQL it is one statement: the
    data-modifying CTEs `ctes`, returning the row count of the first part (the CTE named
    `counted`); on SQLite its `parts` run in order, the later ones only when the first changed
    exactly one row. Its placeholders are numbered, and each SQLite part takes the first `k` of
    the arguments."""

    postgres: str
    ctes: str
    counted: str
    sqlite: tuple[tuple[str, int], ...]

    def __new__(cls, ctes: str, counted: str, sqlite: tuple[tuple[str, int], ...]) -> Gated:
        postgres = f"WITH {ctes} SELECT count(*) FROM {counted}"
        self = super().__new__(cls, postgres)
        self.postgres = postgres  # asyncpg takes exact strings only
        self.ctes = ctes
        self.counted = counted
        self.sqlite = sqlite
        return self


_PLACEHOLDER = re.compile(r"\$(\d+)")
_CTE_NAME = re.compile(r"(?:^|\),\s*)(\w+) AS \(")


def _shifted(sql: str, offset: int) -> str:
    """`sql` with its placeholders `$k` numbered from `offset + 1`."""
    return _PLACEHOLDER.sub(lambda m: f"${int(m[1]) + offset}", sql)


class Merged:
    """Gated statements as one PostgreSQL statement, so that a batch mixing them is a single
    prepared statement run once per step: asyncpg pipelines those runs under one Sync, which
    makes the batch one round trip and one implicit transaction, its steps still in the lock
    order. A step binds its own statement's arguments and NULL for every other's; a part keyed
    on NULL matches no row, so only the step's own statement changes anything, and the result
    is its row count."""

    def __init__(self, *statements: Gated) -> None:
        self.slots: dict[str, tuple[tuple[None, ...], tuple[None, ...]]] = {}
        ctes: list[str] = []
        names: list[str] = []
        offsets: list[tuple[Gated, int, int]] = []
        arity = 0
        for stmt in statements:
            k = max(int(m) for m in _PLACEHOLDER.findall(stmt.ctes))
            ctes.append(_shifted(stmt.ctes, arity))
            names += _CTE_NAME.findall(stmt.ctes)
            offsets.append((stmt, arity, k))
            arity += k
        if len(set(names)) != len(names):
            raise ValueError(f"merged statements share a CTE name: {names}")
        for stmt, offset, k in offsets:
            self.slots[stmt] = ((None,) * offset, (None,) * (arity - offset - k))
        counts = " + ".join(f"(SELECT count(*) FROM {s.counted})" for s in statements)
        self.sql = f"WITH {', '.join(ctes)} SELECT {counts}"

    def bind(self, query: Query) -> tuple[Any, ...] | None:
        """The merged statement's arguments for `query`, or None if it is not one of them."""
        slot = self.slots.get(query.sql) if query.want == "gated" else None
        return None if slot is None else slot[0] + query.args + slot[1]


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


def run_sqlite(conn: sqlite3.Connection | sqlite3.Cursor, plan: Plan[T]) -> T:
    """Run `plan` on a SQLite connection, or a cursor of it (inside the caller's transaction)."""
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


async def run_postgres(conn: asyncpg.Connection, plan: Plan[T], first: Query | None = None) -> T:
    """Run `plan` on an asyncpg connection (inside the caller's transaction); `first`: the
    statement the plan has yielded already."""
    try:
        q = next(plan) if first is None else first
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
