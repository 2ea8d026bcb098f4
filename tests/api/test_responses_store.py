"""Stored responses on SQLite and PostgreSQL: per account, expiring, swept."""

from __future__ import annotations

import time

from sqlalchemy import Connection, func, select

from faregate.admin import ops
from faregate.api.responses_store import ResponseStore
from faregate.db import schema
from faregate.db.engine import AdminDB


async def _accounts(db: AdminDB) -> tuple[str, str]:
    def make(c: Connection) -> tuple[str, str]:
        return str(ops.create_account(c, "a")["id"]), str(ops.create_account(c, "b")["id"])

    return await db.run(make)


async def _rows(db: AdminDB) -> int:
    return int(
        await db.run(
            lambda c: c.execute(select(func.count()).select_from(schema.responses)).scalar_one()
        )
    )


async def test_a_response_is_its_accounts_alone(db: AdminDB) -> None:
    mine, theirs = await _accounts(db)
    store = ResponseStore(db, retention_days=30)
    item = {"type": "message", "id": "msg_1", "role": "user", "content": []}
    response = {"id": "resp_1", "model": "m", "output": []}
    await store.save(mine, response, [item], [item])
    stored = await store.get("resp_1", mine)
    assert stored is not None
    assert (stored.response, stored.input_items, stored.context) == (response, [item], [item])
    assert await store.get("resp_1", theirs) is None
    assert await store.get("resp_nope", mine) is None
    assert await store.delete("resp_1", theirs) is False
    assert await store.delete("resp_1", mine) is True
    assert await store.get("resp_1", mine) is None
    assert await store.delete("resp_1", mine) is False


async def test_expired_responses_are_unreadable_and_swept(db: AdminDB) -> None:
    mine, _ = await _accounts(db)
    store = ResponseStore(db, retention_days=1)
    for i in range(3):
        await store.save(mine, {"id": f"resp_{i}", "model": "m"}, [], [])
    assert await store.sweep() == 0
    past = schema.responses.update().where(schema.responses.c.id == "resp_0").values(expires_at=1)
    await db.run(lambda c: c.execute(past))
    assert await store.get("resp_0", mine) is None  # expired: gone before any sweep
    assert await store.get("resp_1", mine) is not None
    day_later = int(time.time() * 1000) + 86_400_000 + 1000
    assert await store.sweep(day_later) == 3
    assert await _rows(db) == 0
