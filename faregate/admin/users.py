"""Users and account membership: who belongs to which account, with which role."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from faregate.admin.audit import write_lock
from faregate.admin.ops import AdminError, _account_row, _plain
from faregate.billing.store import new_id, now_ms
from faregate.db.schema import account_members, accounts, api_keys, users

ROLES = ("owner", "member")
MAX_LIMIT = 1000


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; whether the row went in (atomic on both engines)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing()
    return bool(conn.execute(stmt).rowcount == 1)


def _user_row(conn: Connection, user_id: str) -> dict[str, Any]:
    row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
    if row is None:
        raise AdminError(f"no user {user_id!r}", 404)
    return _plain(row)


def _email(value: str) -> str:
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not (local and at and "." in domain) or len(email) > 320 or " " in email:
        raise AdminError(f"{value!r} is not an email address", 422)
    return email


def create_user(conn: Connection, email: str, name: str = "") -> dict[str, Any]:
    """A new user; emails are unique (compared lower-cased): a second one is a 409."""
    user = {
        "id": new_id("user"),
        "email": _email(email),
        "name": name.strip(),
        "created_at": now_ms(),
        "disabled_at": None,
    }
    if not insert_ignore(conn, users, user):
        raise AdminError(f"a user with the email {user['email']!r} exists", 409)
    return user


def list_users(
    conn: Connection, *, email: str | None = None, limit: int = 100, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Users by id (a cursor is the last id of the previous page); `email` finds one."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(users).order_by(users.c.id).limit(limit + 1)
    if email is not None:
        stmt = stmt.where(users.c.email == email.strip().lower())
    if cursor is not None:
        stmt = stmt.where(users.c.id > cursor)
    rows = [_plain(r) for r in conn.execute(stmt).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1]["id"]) if more else None)


def user_accounts(conn: Connection, user_id: str) -> list[dict[str, Any]]:
    """The accounts the user belongs to, with the role in each."""
    _user_row(conn, user_id)
    rows = conn.execute(
        select(
            accounts.c.id.label("account_id"),
            accounts.c.name,
            account_members.c.role,
            account_members.c.created_at.label("member_since"),
        )
        .join(accounts, accounts.c.id == account_members.c.account_id)
        .where(account_members.c.user_id == user_id)
        .order_by(account_members.c.created_at)
    ).mappings()
    return [_plain(r) for r in rows]


def get_user(conn: Connection, user_id: str) -> dict[str, Any]:
    return {**_user_row(conn, user_id), "accounts": user_accounts(conn, user_id)}


def disable_user(conn: Connection, user_id: str) -> tuple[dict[str, Any], list[str]]:
    """Disable the user and revoke the keys that name them: (the user, the revoked keys'
    hashes for the caller to evict from its key cache). Disabling twice changes nothing."""
    write_lock(conn)
    user = _user_row(conn, user_id)
    if user["disabled_at"] is not None:
        return user, []
    ts = now_ms()
    conn.execute(update(users).where(users.c.id == user_id).values(disabled_at=ts))
    live = (api_keys.c.user_id == user_id) & api_keys.c.revoked_at.is_(None)
    hashes = [str(h) for h in conn.execute(select(api_keys.c.key_hash).where(live)).scalars()]
    if hashes:
        conn.execute(update(api_keys).where(live).values(revoked_at=ts))
    return {**user, "disabled_at": ts}, hashes


def list_members(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    _account_row(conn, account_id)
    rows = conn.execute(
        select(
            users.c.id.label("user_id"),
            users.c.email,
            users.c.name,
            users.c.disabled_at,
            account_members.c.role,
            account_members.c.created_at,
        )
        .join(users, users.c.id == account_members.c.user_id)
        .where(account_members.c.account_id == account_id)
        .order_by(account_members.c.created_at, users.c.id)
    ).mappings()
    return [_plain(r) for r in rows]


def add_member(conn: Connection, account_id: str, user_id: str, role: str) -> dict[str, Any]:
    """Make the user a member of the account with `role`; a member already there gets the
    new role. A disabled user cannot join (409)."""
    if role not in ROLES:
        raise AdminError(f"role must be one of {', '.join(ROLES)}", 422)
    write_lock(conn)
    _account_row(conn, account_id)
    user = _user_row(conn, user_id)
    if user["disabled_at"] is not None:
        raise AdminError(f"the user {user_id!r} is disabled", 409)
    member = {"account_id": account_id, "user_id": user_id, "role": role, "created_at": now_ms()}
    if not insert_ignore(conn, account_members, member):
        conn.execute(
            update(account_members)
            .where(account_members.c.account_id == account_id)
            .where(account_members.c.user_id == user_id)
            .values(role=role)
        )
        member = _plain(
            conn.execute(
                select(account_members)
                .where(account_members.c.account_id == account_id)
                .where(account_members.c.user_id == user_id)
            )
            .mappings()
            .one()
        )
    return member


def remove_member(conn: Connection, account_id: str, user_id: str) -> dict[str, Any]:
    """Remove the membership; refused (409) while a live key of the account names the user."""
    write_lock(conn)
    _account_row(conn, account_id)
    where = (account_members.c.account_id == account_id) & (account_members.c.user_id == user_id)
    row = conn.execute(select(account_members).where(where)).mappings().first()
    if row is None:
        raise AdminError(f"the user {user_id!r} is not a member of {account_id!r}", 404)
    keys = conn.execute(
        select(api_keys.c.id).where(
            api_keys.c.account_id == account_id,
            api_keys.c.user_id == user_id,
            api_keys.c.revoked_at.is_(None),
        )
    ).scalars()
    live = sorted(str(k) for k in keys)
    if live:
        raise AdminError(
            f"keys {', '.join(live)} name this user: revoke them or move them to another user",
            409,
        )
    conn.execute(account_members.delete().where(where))
    return _plain(row)


def is_member(conn: Connection, account_id: str, user_id: str) -> bool:
    found = conn.execute(
        select(account_members.c.role).where(
            account_members.c.account_id == account_id, account_members.c.user_id == user_id
        )
    ).first()
    return found is not None


def set_key_user(conn: Connection, key_id: str, user_id: str | None) -> dict[str, Any]:
    """Name the user a key belongs to (a member of the key's account), or None for nobody."""
    write_lock(conn)
    key = conn.execute(
        select(api_keys.c.id, api_keys.c.account_id, api_keys.c.user_id).where(
            api_keys.c.id == key_id
        )
    ).first()
    if key is None:
        raise AdminError(f"no key {key_id!r}", 404)
    if user_id is not None:
        user = _user_row(conn, user_id)
        if user["disabled_at"] is not None:
            raise AdminError(f"the user {user_id!r} is disabled", 409)
        if not is_member(conn, key.account_id, user_id):
            raise AdminError(
                f"the user {user_id!r} is not a member of the key's account {key.account_id!r}",
                409,
            )
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(user_id=user_id))
    return {"id": key_id, "account_id": key.account_id, "user_id": user_id}
