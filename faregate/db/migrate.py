"""Bring a database to the newest schema; run by every process on start.

A database already at the newest revision is recognised with one query, without Alembic;
`faregate serve` migrates in a short-lived child process, so the server itself never holds
Alembic (and its template engine) in memory."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import re
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from faregate.db.urls import is_sqlite, sqlalchemy_url, sqlite_path

_SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"
_LOCK_ID = 0x6661726567  # serializes migrations across replicas on PostgreSQL
_REVISION = re.compile(r'^(down_revision|revision) = (?:"([^"]+)"|None)$', re.MULTILINE)


@functools.cache
def head() -> str:
    """The newest revision, read from the version files' `revision` and `down_revision`
    lines (the one revision no other follows)."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in (_SCRIPTS / "versions").glob("*.py"):
        for name, value in _REVISION.findall(path.read_text()):
            if value:
                (revisions if name == "revision" else followed).add(value)
    heads = revisions - followed
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def _current(connection: Connection) -> str | None:
    """The revision the database is at, None for a database without one."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def _upgrade(connection: Connection, revision: str) -> None:
    if revision == "head" and _current(connection) == head():
        return
    from alembic import command  # Alembic is large: loaded only when there is work for it
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def lock_path(database: Path) -> Path:
    """The file whose lock serializes migrations of a SQLite database: beside it."""
    return database.with_name(database.name + ".migrate-lock")


@contextlib.asynccontextmanager
async def _sqlite_lock(database: Path) -> AsyncIterator[None]:
    """Hold an exclusive lock on the database's lock file (waiting in a thread, so the loop
    runs on): one process at a time migrates, the next finds the schema current."""
    fd = os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


async def upgrade(url: str, revision: str = "head") -> None:
    """Apply every pending migration (up to `revision`) to the database at `url`, one
    process at a time."""
    if not is_sqlite(url):
        await _migrate(url, revision)
        return
    database = sqlite_path(url)
    database.parent.mkdir(parents=True, exist_ok=True)
    async with _sqlite_lock(database):
        await _migrate(url, revision)


async def _migrate(url: str, revision: str) -> None:
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.begin() as conn:
            if not is_sqlite(url):
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
            await conn.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()


def upgrade_apart(url: str) -> bool:
    """Bring the database at `url` to the newest schema in a forked child process, before
    the server starts its loop, so that the server never loads Alembic. True when the child
    succeeded; False when it failed or could not be forked (other threads running): the
    server's own start then migrates, and reports any failure as it always does."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: migrate, then leave without running the parent's exit hooks
        code = 1
        with contextlib.suppress(BaseException):
            asyncio.run(upgrade(url))
            code = 0
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
