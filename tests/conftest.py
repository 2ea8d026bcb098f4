"""Shared fixtures: the simulator, gateways on SQLite and PostgreSQL, fresh databases, and a
migrated database behind the operator-side access (`db`)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from harness import Gateway, Sim, close_openai_clients, start_gateway, start_sim, stop

from faregate.auth.keys import KeyHasher
from faregate.db import migrate
from faregate.db.engine import AdminDB

PG_ADMIN_DSN = os.environ.get("FAREGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def new_pg_database() -> str:
    name = f"faregate_test_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(autouse=True)
def _close_openai_clients() -> Iterator[None]:
    """The clients `harness.openai_client` made for a test, closed after it."""
    yield
    close_openai_clients()


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = new_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    s = start_sim(tmp_path_factory.mktemp("sim") / "sim.log")
    yield s
    stop(s.proc)


@pytest.fixture(scope="session")
def gateway(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One SQLite gateway shared by the tests that do not restart it."""
    gw = start_gateway(sim.url, tmp_path_factory.mktemp("gw"))
    yield gw
    stop(gw.proc)


@pytest.fixture(scope="session")
def pg_gateway(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    url = new_pg_database()
    gw = start_gateway(sim.url, tmp_path_factory.mktemp("pggw"), database_url=url)
    yield gw
    stop(gw.proc)
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def any_gateway(request: pytest.FixtureRequest) -> Gateway:
    """Each test that takes this runs on SQLite and on PostgreSQL."""
    name = "gateway" if request.param == "sqlite" else "pg_gateway"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'faregate.db'}"
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
