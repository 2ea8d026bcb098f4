"""Operator-side database access: one transaction per action, never interleaved with the
ledger's own writes on SQLite.

On SQLite the ledger writes synchronously from the event loop's thread. An async driver would
run an operator's transaction statement by statement between loop turns, so the ledger could
wait on a write lock whose owner waits on the loop: on SQLite, operator actions therefore run
synchronously too, whole, in the loop's thread (they take a millisecond or so). On PostgreSQL
they run on an asyncpg engine without blocking the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from faregate.db.urls import is_sqlite, sqlalchemy_url, sqlite_path

T = TypeVar("T")


class AdminDB:
    def __init__(self, url: str, before: Callable[[], None] | None = None) -> None:
        """`before` runs ahead of each action on SQLite: the ledger's `finish_open`, so an
        operator's transaction never waits on a ledger transaction left open on this thread."""
        self.url = url
        self._before = before
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        if is_sqlite(url):
            self._sync = create_engine(f"sqlite:///{sqlite_path(url)}")

            @event.listens_for(self._sync, "connect")
            def _pragmas(dbapi_conn: object, _: object) -> None:
                cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
                cursor.execute("PRAGMA busy_timeout=5000")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()
        else:
            self._async = create_async_engine(sqlalchemy_url(url))

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` as one transaction: committed if it returns, rolled back if it raises."""
        if self._sync is not None:
            if self._before is not None:
                self._before()
            with self._sync.begin() as conn:
                return fn(conn)
        assert self._async is not None
        async with self._async.begin() as aconn:
            return await aconn.run_sync(fn)

    async def dispose(self) -> None:
        if self._sync is not None:
            self._sync.dispose()
        if self._async is not None:
            await self._async.dispose()
