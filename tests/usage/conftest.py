"""Fixtures of the usage tests: a migrated database (SQLite or PostgreSQL) behind AdminDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faregate.auth.keys import KeyHasher
from faregate.db import migrate
from faregate.db.engine import AdminDB


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'usage.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[AdminDB]:
    await migrate.upgrade(db_url)
    admin_db = AdminDB(db_url)
    try:
        yield admin_db
    finally:
        await admin_db.dispose()


@pytest.fixture
def hasher() -> KeyHasher:
    return KeyHasher(b"test-secret")
