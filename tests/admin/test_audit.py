"""The audit log on SQLite and PostgreSQL: written with the action or not at all, filtered,
paged newest first."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import Connection, func, select

from faregate.admin import audit, ops, users
from faregate.admin.ops import AdminError
from faregate.db.engine import AdminDB
from faregate.db.schema import accounts, audit_log
from faregate.db.schema import users as users_table


def _count(c: Connection) -> int:
    return int(c.execute(select(func.count()).select_from(audit_log)).scalar_one())


async def test_the_row_commits_with_the_action_or_not_at_all(db: AdminDB) -> None:
    user = await db.run(
        audit.audited(
            lambda c: users.create_user(c, "ada@example.com", "Ada"),
            "admin:env",
            "user.create",
            lambda u: str(u["id"]),
            lambda u: {"email": u["email"]},
        )
    )
    rows, cursor = await db.run(lambda c: audit.list(c, audit.AuditFilters(), 10, None))
    assert cursor is None
    assert [(r["actor"], r["action"], r["target"], r["detail"]) for r in rows] == [
        ("admin:env", "user.create", user["id"], {"email": "ada@example.com"})
    ]

    def fails(c: Connection) -> None:
        users.create_user(c, "bob@example.com", "Bob")
        audit.record(c, "admin:env", "user.create", "x", None)
        raise AdminError("no", 409)

    with pytest.raises(AdminError):
        await db.run(fails)
    with pytest.raises(AdminError):  # refused by the action itself: no audit row either
        await db.run(
            audit.audited(
                lambda c: users.create_user(c, "ada@example.com", "Again"),
                "admin:env",
                "user.create",
                None,
            )
        )
    assert await db.run(_count) == 1
    emails = await db.run(lambda c: list(c.execute(select(users_table.c.email)).scalars()))
    assert emails == ["ada@example.com"]


async def test_a_reply_that_cannot_be_rendered_commits_nothing(db: AdminDB) -> None:
    """An action whose reply would fail to render after its commit (the client gets a 500,
    retries, and the action is applied twice) is rolled back instead."""

    def act(c: Connection) -> dict[str, object]:
        account = ops.create_account(c, "unrenderable")
        return {**account, "balance": 2**64}  # past what orjson renders

    with pytest.raises(orjson.JSONEncodeError):
        await db.run(audit.audited(act, "admin:env", "account.create", lambda a: str(a["id"])))
    assert await db.run(_count) == 0
    names = await db.run(lambda c: list(c.execute(select(accounts.c.name)).scalars()))
    assert names == []


async def test_filters_and_pages(db: AdminDB) -> None:
    def seed(c: Connection) -> None:
        acct = ops.create_account(c, "a")["id"]
        for i in range(7):
            audit.record(
                c, "admin:env" if i % 2 else "admin:fga-abc", "credits.grant", acct, {"i": i}
            )
        audit.record(c, "key:key_1", "code.redeem", "code_1", None)

    await db.run(seed)
    everything = audit.AuditFilters()
    pages: list[list[int]] = []
    cursor = None
    while True:
        rows, cursor = await db.run(lambda c, cur=cursor: audit.list(c, everything, 3, cur))
        pages.append([r["id"] for r in rows])
        if cursor is None:
            break
    flat = [i for page in pages for i in page]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert flat == sorted(flat, reverse=True)

    grants, _ = await db.run(
        lambda c: audit.list(c, audit.AuditFilters(action="credits.grant", actor="admin:env"), 100)
    )
    assert sorted(r["detail"]["i"] for r in grants) == [1, 3, 5]
    redeems, _ = await db.run(lambda c: audit.list(c, audit.AuditFilters(target="code_1"), 100))
    assert [(r["actor"], r["detail"]) for r in redeems] == [("key:key_1", None)]
    first_at = min(r["at"] for r in (await db.run(lambda c: audit.list(c, everything, 100)))[0])
    none, _ = await db.run(lambda c: audit.list(c, audit.AuditFilters(until=first_at - 1000), 100))
    assert none == []
    window = audit.AuditFilters(since=first_at, until=first_at + 3_600_000)
    assert len((await db.run(lambda c: audit.list(c, window, 100)))[0]) == 8
