"""Users and account members on SQLite and PostgreSQL: uniqueness, roles, keys naming users."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, select

from faregate.admin import ops, users
from faregate.admin.ops import AdminError
from faregate.auth.keys import KeyHasher
from faregate.db.engine import AdminDB
from faregate.db.schema import api_keys


async def _account(db: AdminDB, name: str = "acme") -> str:
    return str((await db.run(lambda c: ops.create_account(c, name)))["id"])


async def _refused(db: AdminDB, fn: Any, status: int) -> AdminError:
    with pytest.raises(AdminError) as info:
        await db.run(fn)
    assert info.value.status == status, info.value.message
    return info.value


async def test_create_get_and_list_users(db: AdminDB) -> None:
    ada = await db.run(lambda c: users.create_user(c, " Ada@Example.com ", "Ada"))
    assert ada["email"] == "ada@example.com"
    assert ada["disabled_at"] is None
    await _refused(db, lambda c: users.create_user(c, "ADA@example.com", "Other"), 409)
    await _refused(db, lambda c: users.create_user(c, "not-an-email", "x"), 422)
    for i in range(4):
        await db.run(lambda c, i=i: users.create_user(c, f"u{i}@example.com", f"U{i}"))
    got = await db.run(lambda c: users.get_user(c, ada["id"]))
    assert got["email"] == "ada@example.com"
    assert got["accounts"] == []
    await _refused(db, lambda c: users.get_user(c, "user_nope"), 404)

    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await db.run(lambda c, cur=cursor: users.list_users(c, limit=2, cursor=cur))
        assert len(page) <= 2
        seen += [u["id"] for u in page]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    found, _ = await db.run(lambda c: users.list_users(c, email="ADA@example.com"))
    assert [u["id"] for u in found] == [ada["id"]]


async def test_members_roles_and_user_accounts(db: AdminDB) -> None:
    acct, other = await _account(db), await _account(db, "other")
    ada = await db.run(lambda c: users.create_user(c, "ada@example.com", "Ada"))
    bob = await db.run(lambda c: users.create_user(c, "bob@example.com", "Bob"))
    member = await db.run(lambda c: users.add_member(c, acct, ada["id"], "owner"))
    assert member["role"] == "owner"
    await db.run(lambda c: users.add_member(c, acct, bob["id"], "member"))
    await db.run(lambda c: users.add_member(c, other, ada["id"], "member"))
    again = await db.run(lambda c: users.add_member(c, other, ada["id"], "owner"))
    assert again["role"] == "owner"  # adding again changes the role

    members = await db.run(lambda c: users.list_members(c, acct))
    assert {(m["email"], m["role"]) for m in members} == {
        ("ada@example.com", "owner"),
        ("bob@example.com", "member"),
    }
    accounts = await db.run(lambda c: users.user_accounts(c, ada["id"]))
    assert {(a["account_id"], a["role"]) for a in accounts} == {(acct, "owner"), (other, "owner")}

    await _refused(db, lambda c: users.add_member(c, acct, ada["id"], "admin"), 422)
    await _refused(db, lambda c: users.add_member(c, "acct_nope", ada["id"], "member"), 404)
    await _refused(db, lambda c: users.add_member(c, acct, "user_nope", "member"), 404)
    await db.run(lambda c: users.remove_member(c, acct, bob["id"]))
    await _refused(db, lambda c: users.remove_member(c, acct, bob["id"]), 404)
    members = await db.run(lambda c: users.list_members(c, acct))
    assert [m["user_id"] for m in members] == [ada["id"]]


async def test_a_key_names_a_member_of_its_account(db: AdminDB, hasher: KeyHasher) -> None:
    acct, other = await _account(db), await _account(db, "other")
    ada = await db.run(lambda c: users.create_user(c, "ada@example.com", "Ada"))
    outsider = await db.run(lambda c: users.create_user(c, "eve@example.com", "Eve"))
    await db.run(lambda c: users.add_member(c, acct, ada["id"], "member"))
    await db.run(lambda c: users.add_member(c, other, outsider["id"], "member"))
    key, _ = await db.run(lambda c: ops.create_key(c, hasher, acct, "k"))

    await _refused(db, lambda c: users.set_key_user(c, key["id"], outsider["id"]), 409)
    await _refused(db, lambda c: users.set_key_user(c, "key_nope", ada["id"]), 404)
    set_to = await db.run(lambda c: users.set_key_user(c, key["id"], ada["id"]))
    assert set_to == {"id": key["id"], "account_id": acct, "user_id": ada["id"]}

    # A member named by a live key stays until the key is revoked or moved.
    await _refused(db, lambda c: users.remove_member(c, acct, ada["id"]), 409)
    await db.run(lambda c: users.set_key_user(c, key["id"], None))
    await db.run(lambda c: users.remove_member(c, acct, ada["id"]))


async def test_disabling_a_user_revokes_their_keys(db: AdminDB, hasher: KeyHasher) -> None:
    acct = await _account(db)
    ada = await db.run(lambda c: users.create_user(c, "ada@example.com", "Ada"))
    await db.run(lambda c: users.add_member(c, acct, ada["id"], "owner"))
    mine, _ = await db.run(lambda c: ops.create_key(c, hasher, acct, "mine"))
    shared, _ = await db.run(lambda c: ops.create_key(c, hasher, acct, "shared"))
    await db.run(lambda c: users.set_key_user(c, mine["id"], ada["id"]))

    user, hashes = await db.run(lambda c: users.disable_user(c, ada["id"]))
    assert user["disabled_at"] is not None
    assert len(hashes) == 1

    def revoked(c: Connection) -> dict[str, bool]:
        rows = c.execute(select(api_keys.c.id, api_keys.c.revoked_at)).all()
        return {r.id: r.revoked_at is not None for r in rows}

    assert await db.run(revoked) == {mine["id"]: True, shared["id"]: False}
    again, hashes = await db.run(lambda c: users.disable_user(c, ada["id"]))
    assert again["disabled_at"] == user["disabled_at"] and hashes == []
    other = await _account(db, "other")
    await _refused(db, lambda c: users.add_member(c, other, ada["id"], "member"), 409)
    await _refused(db, lambda c: users.set_key_user(c, shared["id"], ada["id"]), 409)
