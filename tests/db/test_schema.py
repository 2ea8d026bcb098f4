"""Money columns checked by the database (migration 0009), on SQLite and PostgreSQL: only
integers within the range of amounts are stored, a fresh schema has the same checks as a
migrated one, and the migration names the rows it cannot keep instead of dropping them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from faregate.billing.bounds import MAX_AMOUNT
from faregate.db import schema
from faregate.db.urls import is_sqlite, sqlalchemy_url

SCRIPTS = Path(schema.__file__).resolve().parent.parent / "migrations"
MONEY = {
    "accounts": {"balance", "spend_limit"},
    "api_keys": {"spend_limit"},
    "holds": {"amount", "cost"},
    "ledger": {"amount", "cost"},
    "spend_windows": {"spent"},
    "redemption_codes": {"amount"},
    "price_overrides": {"input", "output", "cached_input"},
}


async def _run(url: str, fn: Callable[[Connection], Any]) -> Any:
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _alembic(step: str, revision: str) -> Callable[[Connection], None]:
    def act(conn: Connection) -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(SCRIPTS))
        cfg.attributes["connection"] = conn
        getattr(command, step)(cfg, revision)

    return act


def _checks(conn: Connection) -> dict[str, dict[str, str]]:
    found = inspect(conn)
    return {
        table: {
            c["name"]: " ".join(c["sqltext"].split()) for c in found.get_check_constraints(table)
        }
        for table in MONEY
    }


def _account(conn: Connection, account_id: str, balance: Any) -> None:
    conn.execute(
        text("INSERT INTO accounts (id, name, balance, created_at) VALUES (:i, 'a', :b, 0)"),
        {"i": account_id, "b": balance},
    )


async def test_every_money_column_is_checked(db_url: str) -> None:
    await _run(db_url, _alembic("upgrade", "head"))
    checks = await _run(db_url, _checks)
    for table, columns in MONEY.items():
        if not is_sqlite(db_url):  # BIGINT already: `spent` needs no range of its own
            columns = columns - {"spent"}
        assert {f"ck_{table}_{c}" for c in columns} == set(checks[table]), table


async def test_a_fresh_schema_has_the_checks_of_a_migrated_one(db_url: str, tmp_path: Path) -> None:
    await _run(db_url, _alembic("upgrade", "head"))
    migrated = await _run(db_url, _checks)
    if is_sqlite(db_url):
        fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
        engine = create_engine(fresh_url)
        schema.metadata.create_all(engine)
        with engine.connect() as conn:
            fresh = _checks(conn)
        engine.dispose()
    else:

        def rebuilt(conn: Connection) -> dict[str, dict[str, str]]:
            conn.execute(text("CREATE SCHEMA fresh"))
            conn.execute(text("SET search_path TO fresh"))
            schema.metadata.create_all(conn)
            return _checks(conn)

        fresh = await _run(db_url, rebuilt)
    assert fresh == migrated


@pytest.mark.parametrize(
    "balance", [2**63 - 1, MAX_AMOUNT + 1, -1, 1.5, float(2**63), "ten"], ids=repr
)
async def test_the_database_refuses_a_balance_outside_the_range(db_url: str, balance: Any) -> None:
    await _run(db_url, _alembic("upgrade", "head"))
    if isinstance(balance, str) and not is_sqlite(db_url):
        pytest.skip("a string is no BIGINT on PostgreSQL (refused by the driver)")
    if isinstance(balance, float) and not is_sqlite(db_url):
        pytest.skip("asyncpg refuses a float for a BIGINT")
    with pytest.raises(IntegrityError):
        await _run(db_url, lambda c: _account(c, "acct_x", balance))
    await _run(db_url, lambda c: _account(c, "acct_x", MAX_AMOUNT))


async def test_the_database_refuses_ledger_and_code_amounts_outside_the_range(
    db_url: str,
) -> None:
    await _run(db_url, _alembic("upgrade", "head"))
    await _run(db_url, lambda c: _account(c, "acct_l", 0))
    ledger = (
        "INSERT INTO ledger (account_id, kind, amount, estimated, created_at)"
        " VALUES ('acct_l', 'grant', :a, false, 0)"
    )
    for amount in (MAX_AMOUNT + 1, -MAX_AMOUNT - 1):
        with pytest.raises(IntegrityError):
            await _run(db_url, lambda c, a=amount: c.execute(text(ledger), {"a": a}))
    await _run(db_url, lambda c: c.execute(text(ledger), {"a": -MAX_AMOUNT}))
    code = (
        "INSERT INTO redemption_codes (id, code_hash, prefix, amount, max_uses, created_at)"
        " VALUES ('code_x', 'h', 'p', :a, 1, 0)"
    )
    for amount in (0, MAX_AMOUNT + 1):
        with pytest.raises(IntegrityError):
            await _run(db_url, lambda c, a=amount: c.execute(text(code), {"a": a}))


async def test_the_migration_names_the_rows_it_cannot_keep(db_url: str) -> None:
    await _run(db_url, _alembic("upgrade", "0006"))
    bad = float(2**63) if is_sqlite(db_url) else MAX_AMOUNT + 1  # what the old code stored
    await _run(db_url, lambda c: _account(c, "acct_bad", bad))
    await _run(db_url, lambda c: _account(c, "acct_ok", 7))
    await _run(db_url, _alembic("upgrade", "0008"))  # the revisions before the checks
    with pytest.raises(RuntimeError, match="ck_accounts_balance") as info:
        await _run(db_url, _alembic("upgrade", "head"))
    assert "1 row(s) of accounts" in str(info.value)
    await _run(db_url, lambda c: c.execute(text("DELETE FROM accounts WHERE id = 'acct_bad'")))
    await _run(db_url, _alembic("upgrade", "head"))
    balances = await _run(
        db_url, lambda c: c.execute(text("SELECT id, balance FROM accounts")).all()
    )
    assert [tuple(r) for r in balances] == [("acct_ok", 7)]
    await _run(db_url, _alembic("downgrade", "0006"))
    assert not any((await _run(db_url, _checks)).values())
