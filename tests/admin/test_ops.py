"""Operator actions on accounts and the ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Connection

from faregate.admin import ops
from faregate.db.engine import AdminDB
from faregate.db.schema import ledger


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
