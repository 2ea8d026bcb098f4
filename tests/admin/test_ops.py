"""Operator actions on accounts and the ledger (SQLite and PostgreSQL): every amount within the
one range, refused outside it naming the field, no balance past the bound, units shown."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, select

from faregate.admin import ops
from faregate.admin.ops import AdminError
from faregate.auth.keys import KeyHasher
from faregate.billing.bounds import MAX_AMOUNT
from faregate.db.engine import AdminDB
from faregate.db.schema import accounts, ledger


async def _account(db: AdminDB, credits: int = 0) -> str:
    def act(c: Connection) -> str:
        account_id = str(ops.create_account(c, "bounds")["id"])
        if credits:
            ops.grant(c, account_id, credits)
        return account_id

    return str(await db.run(act))


async def _refused(db: AdminDB, fn: Any) -> AdminError:
    with pytest.raises(AdminError) as info:
        await db.run(fn)
    return info.value


async def _state(db: AdminDB, account_id: str) -> tuple[Any, list[Any]]:
    def act(c: Connection) -> tuple[Any, list[Any]]:
        balance = c.execute(select(accounts.c.balance).where(accounts.c.id == account_id))
        rows = c.execute(select(ledger.c.amount).where(ledger.c.account_id == account_id))
        return balance.scalar_one(), list(rows.scalars())

    return await db.run(act)


@pytest.mark.parametrize("amount", [2**63, 2**63 - 1, MAX_AMOUNT + 1, -MAX_AMOUNT - 1, -(2**63)])
async def test_a_grant_outside_the_range_is_refused_naming_the_field(
    db: AdminDB, amount: int
) -> None:
    account = await _account(db, 5)
    err = await _refused(db, lambda c: ops.grant(c, account, amount))
    assert (err.status, err.param) == (422, "amount")
    assert str(MAX_AMOUNT)[:4] in err.message.replace("_", "")
    assert await _state(db, account) == (5, [5])


async def test_a_bool_is_not_an_amount(db: AdminDB) -> None:
    account = await _account(db)
    err = await _refused(db, lambda c: ops.grant(c, account, True))
    assert (err.status, err.param) == (422, "amount")


async def test_no_balance_goes_past_the_bound(db: AdminDB) -> None:
    """The 2**63 - 1 plus 1 of SQLite (a float balance, then a 500 after commit): refused,
    the balance stays the same integer and the ledger has no row for it."""
    account = await _account(db, MAX_AMOUNT)
    for extra in (1, MAX_AMOUNT):
        err = await _refused(db, lambda c, extra=extra: ops.grant(c, account, extra))
        assert (err.status, err.code) == (409, ops.BALANCE_TOO_LARGE)
    balance, rows = await _state(db, account)
    assert type(balance) is int and balance == MAX_AMOUNT and rows == [MAX_AMOUNT]
    assert await db.run(lambda c: ops.grant(c, account, -1)) == MAX_AMOUNT - 1
    assert await db.run(lambda c: ops.grant(c, account, 1)) == MAX_AMOUNT


@pytest.mark.parametrize("limit", [2**63, MAX_AMOUNT + 1, -1, True, 1.5, "10"])
async def test_a_spend_limit_outside_the_range_is_refused(db: AdminDB, limit: Any) -> None:
    account = await _account(db)
    fields = {"spend_limit": limit, "spend_period": "daily"}
    err = await _refused(db, lambda c: ops.update_account(c, account, fields))
    assert (err.status, err.param) == (422, "spend_limit")
    top = {"spend_limit": MAX_AMOUNT, "spend_period": "daily"}
    assert (await db.run(lambda c: ops.update_account(c, account, top)))["spend_limit"] == (
        MAX_AMOUNT
    )


@pytest.mark.parametrize("expires_at", [2**63, -1, True, "tomorrow"])
async def test_a_key_expiry_outside_the_range_is_refused(
    db: AdminDB, hasher: KeyHasher, expires_at: Any
) -> None:
    account = await _account(db)
    record, _ = await db.run(lambda c: ops.create_key(c, hasher, account, "k"))
    fields = {"expires_at": expires_at}
    err = await _refused(db, lambda c: ops.update_key(c, record["id"], fields))
    assert (err.status, err.param) == (422, "expires_at")


async def test_ledger_entries_show_their_units(db: AdminDB) -> None:
    def act(c: Connection) -> list[dict[str, object]]:
        account = ops.create_account(c, "a")["id"]
        ops.grant(c, account, 1_000, "credits")
        c.execute(
            ledger.insert().values(
                account_id=account,
                kind="settle",
                amount=0,
                hold_id="hold_1",
                cost=0,
                units='{"images:1024x1024":2}',
                created_at=1,
            )
        )
        return ops.ledger_entries(c, account)

    entries = await db.run(act)
    assert [(e["kind"], e["units"]) for e in entries] == [
        ("settle", {"images:1024x1024": 2}),
        ("grant", {}),
    ]
