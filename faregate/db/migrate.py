"""Bring a database to the newest schema; run by every process on start."""

from __future__ import annotations

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


async def upgrade(url: str, revision: str = "head") -> None:
    """Apply every pending migration (up to `revision`) to the database at `url`."""
    if is_sqlite(url):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.begin() as conn:
            if not is_sqlite(url):
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
            await conn.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()
