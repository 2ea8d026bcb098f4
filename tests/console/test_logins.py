"""Console identities on SQLite and PostgreSQL: sign-up makes a user, an owned account and
the sign-up credits in one transaction; sessions live until they expire, end or their user is
disabled; a reset link works once and ends the user's sessions; operators are flagged."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from faregate.admin import ops, users
from faregate.admin.ops import AdminError
from faregate.auth.keys import KeyHasher
from faregate.console import logins
from faregate.db.engine import AdminDB
from faregate.db.schema import console_sessions


async def test_signup_session_reset_and_operator(db: AdminDB, hasher: KeyHasher) -> None:
    made = await db.run(lambda c: logins.signup(c, "Ann@Example.com", "Ann", "hash-1", 7))
    user_id, account_id = made["user"]["id"], made["account"]["id"]
    account = await db.run(lambda c: ops.get_account(c, account_id))
    assert (account["name"], account["balance"]) == ("Ann", 7)
    members = await db.run(lambda c: users.list_members(c, account_id))
    assert [(m["email"], m["role"]) for m in members] == [("ann@example.com", "owner")]
    with pytest.raises(AdminError) as taken:
        await db.run(lambda c: logins.signup(c, "ann@example.com", "", "h", 0))
    assert taken.value.status == 409
    login = await db.run(lambda c: logins.login_of(c, " ANN@example.com "))
    assert login is not None and login["password_hash"] == "hash-1" and not login["operator"]

    token, row = await db.run(lambda c: logins.open_session(c, hasher, user_id, 1))
    assert row["id"] != token and len(token) >= 40  # only a keyed hash is stored
    found = await db.run(lambda c: logins.session_of(c, hasher, token))
    assert found is not None and found["user_id"] == user_id and found["operator"] is False
    assert await db.run(lambda c: logins.session_of(c, hasher, token + "x")) is None

    await db.run(lambda c: logins.set_operator(c, user_id, True))
    assert await db.run(logins.operators) == {user_id}
    found = await db.run(lambda c: logins.session_of(c, hasher, token))
    assert found is not None and found["operator"] is True

    reset = await db.run(lambda c: logins.issue_reset(c, hasher, user_id, "console:op", 1))
    assert await db.run(lambda c: logins.use_reset(c, hasher, reset, "hash-2")) == user_id
    assert await db.run(lambda c: logins.session_of(c, hasher, token)) is None  # ended
    login = await db.run(lambda c: logins.login_of(c, "ann@example.com"))
    assert login is not None and login["password_hash"] == "hash-2"
    with pytest.raises(AdminError):  # once only
        await db.run(lambda c: logins.use_reset(c, hasher, reset, "hash-3"))


async def test_sessions_end_when_they_expire_or_their_user_is_disabled(
    db: AdminDB, hasher: KeyHasher
) -> None:
    made = await db.run(lambda c: logins.signup(c, "bo@example.com", "Bo", "h", 0))
    user_id = made["user"]["id"]
    old, old_row = await db.run(lambda c: logins.open_session(c, hasher, user_id, 1))
    new, _ = await db.run(lambda c: logins.open_session(c, hasher, user_id, 1))
    await db.run(
        lambda c: c.execute(
            update(console_sessions)
            .where(console_sessions.c.id == old_row["id"])
            .values(expires_at=0)
        )
    )
    assert await db.run(lambda c: logins.session_of(c, hasher, old)) is None
    assert await db.run(lambda c: logins.session_of(c, hasher, new)) is not None
    await db.run(lambda c: users.disable_user(c, user_id))
    assert await db.run(lambda c: logins.session_of(c, hasher, new)) is None
    expired = await db.run(lambda c: logins.issue_reset(c, hasher, user_id, "cli", 1e-9))
    with pytest.raises(AdminError):
        await db.run(lambda c: logins.use_reset(c, hasher, expired, "h2"))
