"""Bring a database to the newest schema; run by every process on start."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from faregate.db.urls import is_sqlite, sqlalchemy_url, sqlite_path

_SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"
_LOCK_ID = 0x6661726567  # serializes migrations across replicas on PostgreSQL


def _upgrade(connection: Connection, revision: str) -> None:
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
