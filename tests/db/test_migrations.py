"""Upgrades keep the money: a database with real rows at an older revision is brought to
the newest schema on SQLite and PostgreSQL, and every row, balance and open hold survives."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from faregate.app import make_store
from faregate.auth.keys import KeyHasher
from faregate.billing.store import HoldTicket
from faregate.billing.types import Settlement
from faregate.db import migrate
from faregate.db.engine import AdminDB

TABLES = ("accounts", "api_keys", "holds", "ledger", "usage_log", "instances")
ADDED = {  # columns added since 0006
    ("ledger", "units"),
    ("usage_log", "units"),
    ("usage_log", "guard"),
    ("holds", "owner"),
    ("accounts", "restrictions"),
    ("api_keys", "guards"),
}


def _at_0006(c: Connection, hasher: KeyHasher) -> dict[str, Any]:
    """An account with a key, a grant, a settled hold, an open hold and a usage row, written
    the way the 0006 code wrote them."""
    ts = 1_700_000_000_000
    account, key = "acct_old", "key_old"
    c.execute(
        text("INSERT INTO accounts (id, name, balance, created_at) VALUES (:a, 'old', 10000, :t)"),
        {"a": account, "t": ts},
    )
    c.execute(
        text(
            "INSERT INTO api_keys (id, account_id, name, key_hash, prefix, created_at)"
            " VALUES (:k, :a, 'k', :h, 'fg-old', :t)"
        ),
        {"k": key, "a": account, "h": hasher("fg-old-key"), "t": ts},
    )
    c.execute(
        text(
            "INSERT INTO ledger (account_id, kind, amount, note, estimated, created_at)"
            " VALUES (:a, 'grant', 10000, 'credits', false, :t)"
        ),
        {"a": account, "t": ts},
    )
    c.execute(
        text("INSERT INTO instances (id, started_at, heartbeat_at) VALUES ('inst_old', :t, :t)"),
        {"t": ts},
    )
    hold = (
        "INSERT INTO holds (id, account_id, key_id, amount, status, model, request_id,"
        " instance_id, created_at, expires_at, closed_at, cost) VALUES (:id, :a, :k, :amount,"
        " :status, 'm', 'req', 'inst_old', :t, :exp, :closed, :cost)"
    )
    ledger = (
        "INSERT INTO ledger (account_id, kind, amount, hold_id, key_id, model, cost,"
        " prompt_tokens, completion_tokens, note, created_at) VALUES (:a, :kind, :amount, :h,"
        " :k, 'm', :cost, :p, :o, NULL, :t)"
    )
    base = {"a": account, "k": key, "t": ts, "exp": ts + 60_000}
    c.execute(
        text(hold),
        {
            **base,
            "id": "hold_done",
            "amount": 500,
            "status": "settled",
            "closed": ts + 5,
            "cost": 200,
        },
    )
    c.execute(
        text(hold),
        {
            **base,
            "id": "hold_open",
            "amount": 1_000,
            "status": "open",
            "closed": None,
            "cost": None,
        },
    )
    rows = [
        ("hold", -500, "hold_done", None, None, None),
        ("settle", 300, "hold_done", 200, 10, 20),
        ("hold", -1_000, "hold_open", None, None, None),
    ]
    for kind, amount, h, cost, p, o in rows:
        c.execute(
            text(ledger),
            {**base, "kind": kind, "amount": amount, "h": h, "cost": cost, "p": p, "o": o},
        )
    c.execute(text("UPDATE accounts SET balance = balance - 1200 WHERE id = :a"), base)
    c.execute(
        text(
            "INSERT INTO usage_log (at, request_id, key_id, account_id, route, model, deployment,"
            " prompt_tokens, completion_tokens, cost, latency_ms, status, cached, estimated)"
            " VALUES (:t, 'req', :k, :a, 'chat', 'm', 'd', 10, 20, 200, 5, 200, false, false)"
        ),
        base,
    )
    return {"account": account, "key": key}


def _snapshot(c: Connection) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in TABLES:
        names = list(c.execute(text(f"SELECT * FROM {table} WHERE 1 = 0")).keys())
        cols = [col for col in names if (table, col) not in ADDED]
        out[table] = sorted(
            tuple(r) for r in c.execute(text(f"SELECT {', '.join(cols)} FROM {table}"))
        )
    return out


async def test_upgrade_keeps_every_row_and_balance(db_url: str, hasher: KeyHasher) -> None:
    await migrate.upgrade(db_url, "0006")
    admin = AdminDB(db_url)
    try:
        made = await admin.run(lambda c: _at_0006(c, hasher))
        before = await admin.run(_snapshot)
        await admin.dispose()  # its statements were prepared against the old schema
        await migrate.upgrade(db_url)
        admin = AdminDB(db_url)
        assert await admin.run(_snapshot) == before
        account = made["account"]

        def balances(c: Connection) -> tuple[int, int, list[Any]]:
            bal = c.execute(text("SELECT balance FROM accounts WHERE id = :a"), {"a": account})
            total = c.execute(
                text("SELECT SUM(amount) FROM ledger WHERE account_id = :a"), {"a": account}
            )
            units = c.execute(text("SELECT units FROM ledger ORDER BY id")).scalars().all()
            return int(bal.scalar_one()), int(total.scalar_one()), list(units)

        balance, ledger_sum, units = await admin.run(balances)
        assert balance == ledger_sum == 10_000 - 1_200
        assert set(units) == {None}
        owners = await admin.run(lambda c: c.execute(text("SELECT owner FROM holds")).all())
        assert [tuple(r) for r in owners] == [(None,), (None,)]  # request holds: reapable

        # The open hold taken before the upgrade closes once, with units, after it.
        store = make_store(db_url)
        await store.start()
        try:
            ticket = HoldTicket("hold_open", account, made["key"], 1_000, "m")
            done = Settlement(
                cost=600, prompt_tokens=0, completion_tokens=0, units=(("images", 1),)
            )
            assert await store.settle(ticket, done)
            assert not await store.release(ticket, "again")
        finally:
            await store.close()
        balance, ledger_sum, units = await admin.run(balances)
        assert balance == ledger_sum == 10_000 - 200 - 600
        assert units[-1] == '{"images":1}'
    finally:
        await admin.dispose()
