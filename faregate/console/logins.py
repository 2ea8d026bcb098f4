"""Console identities over the users of the admin API: passwords, the operator flag, sign-in
sessions and one-time reset links. Functions of one connection, run as one transaction."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection, delete, select, update

from faregate.admin import ops, users
from faregate.admin.audit import write_lock
from faregate.admin.ops import AdminError
from faregate.auth.keys import KeyHasher
from faregate.billing.store import now_ms
from faregate.db.schema import console_logins, console_resets, console_sessions
from faregate.db.schema import users as users_table

HOUR_MS = 3_600_000


def new_token() -> str:
    return secrets.token_urlsafe(32)


def set_password(conn: Connection, user_id: str, password_hash: str) -> None:
    """Store the user's password hash (creating their login row when needed)."""
    values = {"password_hash": password_hash, "updated_at": now_ms()}
    if not users.insert_ignore(conn, console_logins, {"user_id": user_id, **values}):
        conn.execute(
            update(console_logins).where(console_logins.c.user_id == user_id).values(**values)
        )


def set_operator(conn: Connection, user_id: str, operator: bool) -> None:
    users.get_user(conn, user_id)
    row = {"user_id": user_id, "operator": operator, "updated_at": now_ms()}
    if not users.insert_ignore(conn, console_logins, row):
        conn.execute(
            update(console_logins)
            .where(console_logins.c.user_id == user_id)
            .values(operator=operator, updated_at=now_ms())
        )


def signup(
    conn: Connection, email: str, name: str, password_hash: str, credits: int
) -> dict[str, Any]:
    """A new user owning a new account (with the sign-up credits, if any): {user, account}."""
    write_lock(conn)
    user = users.create_user(conn, email, name)
    account = ops.create_account(conn, name.strip() or user["email"])
    users.add_member(conn, account["id"], user["id"], "owner")
    if credits:
        ops.grant(conn, account["id"], credits, "sign-up credits")
    set_password(conn, user["id"], password_hash)
    return {"user": user, "account": account}


def login_of(conn: Connection, email: str) -> dict[str, Any] | None:
    """The user with this email and their login: id, email, name, disabled_at,
    password_hash, operator; None when there is no such user."""
    row = (
        conn.execute(
            select(
                users_table.c.id,
                users_table.c.email,
                users_table.c.name,
                users_table.c.disabled_at,
                console_logins.c.password_hash,
                console_logins.c.operator,
            )
            .select_from(users_table.outerjoin(console_logins))
            .where(users_table.c.email == email.strip().lower())
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def open_session(
    conn: Connection, hasher: KeyHasher, user_id: str, hours: float
) -> tuple[str, dict[str, Any]]:
    """A new session for the user: (the cookie's token, shown this once; the session row)."""
    token = new_token()
    ts = now_ms()
    row = {
        "id": hasher(f"console-session:{token}"),
        "user_id": user_id,
        "csrf": secrets.token_urlsafe(32),
        "account_id": None,
        "playground_key_id": None,
        "created_at": ts,
        "expires_at": ts + int(hours * HOUR_MS),
    }
    conn.execute(console_sessions.insert().values(**row))
    return token, row


def session_of(conn: Connection, hasher: KeyHasher, token: str) -> dict[str, Any] | None:
    """The live session of a cookie's token, with its user and their login; None when it
    is unknown, expired, or its user disabled."""
    row = (
        conn.execute(
            select(
                console_sessions,
                users_table.c.email,
                users_table.c.name,
                users_table.c.disabled_at,
                console_logins.c.operator,
            )
            .select_from(
                console_sessions.join(users_table).outerjoin(
                    console_logins, console_logins.c.user_id == console_sessions.c.user_id
                )
            )
            .where(console_sessions.c.id == hasher(f"console-session:{token}"))
        )
        .mappings()
        .first()
    )
    if row is None or row["expires_at"] <= now_ms() or row["disabled_at"] is not None:
        return None
    session = dict(row)
    session["operator"] = bool(session["operator"])
    return session


def close_session(conn: Connection, session_id: str) -> str | None:
    """End the session; returns its playground key's id (for the caller to revoke)."""
    key_id = conn.execute(
        select(console_sessions.c.playground_key_id).where(console_sessions.c.id == session_id)
    ).scalar_one_or_none()
    conn.execute(delete(console_sessions).where(console_sessions.c.id == session_id))
    return None if key_id is None else str(key_id)


def close_sessions_of(conn: Connection, user_id: str, keep: str | None = None) -> list[str]:
    """End every session of the user but `keep`; returns their playground keys' ids."""
    where = console_sessions.c.user_id == user_id
    if keep is not None:
        where = where & (console_sessions.c.id != keep)
    keys = [
        str(k)
        for k in conn.execute(select(console_sessions.c.playground_key_id).where(where)).scalars()
        if k is not None
    ]
    conn.execute(delete(console_sessions).where(where))
    return keys


def set_session_account(conn: Connection, session_id: str, account_id: str) -> None:
    conn.execute(
        update(console_sessions)
        .where(console_sessions.c.id == session_id)
        .values(account_id=account_id)
    )


def set_playground_key(conn: Connection, session_id: str, key_id: str) -> None:
    conn.execute(
        update(console_sessions)
        .where(console_sessions.c.id == session_id)
        .values(playground_key_id=key_id)
    )


def issue_reset(conn: Connection, hasher: KeyHasher, user_id: str, actor: str, hours: float) -> str:
    """A one-time link token that lets the user set a new password within `hours`."""
    users.get_user(conn, user_id)
    token = new_token()
    ts = now_ms()
    conn.execute(
        console_resets.insert().values(
            token_hash=hasher(f"console-reset:{token}"),
            user_id=user_id,
            created_by=actor[:64],
            created_at=ts,
            expires_at=ts + int(hours * HOUR_MS),
            used_at=None,
        )
    )
    return token


def use_reset(conn: Connection, hasher: KeyHasher, token: str, password_hash: str) -> str:
    """Set the password of the reset link's user, once; the user's other sessions end.
    Returns the user id; an unknown, used or expired link is refused (AdminError 404)."""
    ts = now_ms()
    token_hash = hasher(f"console-reset:{token}")
    taken = conn.execute(
        update(console_resets)
        .where(
            console_resets.c.token_hash == token_hash,
            console_resets.c.used_at.is_(None),
            console_resets.c.expires_at > ts,
        )
        .values(used_at=ts)
        .returning(console_resets.c.user_id)
    ).first()
    if taken is None:
        raise AdminError("This reset link is not valid: it is unknown, used or expired.", 404)
    user_id = str(taken.user_id)
    set_password(conn, user_id, password_hash)
    close_sessions_of(conn, user_id)
    return user_id


def operators(conn: Connection) -> set[str]:
    rows = conn.execute(select(console_logins.c.user_id).where(console_logins.c.operator))
    return {str(r) for r in rows.scalars()}
