"""Redemption codes: credits an operator hands out as a code, each redeemed once per account.

A code is shown once, when it is created; the table keeps its keyed hash (like API keys) and
a prefix to recognize it by. Redeeming is one transaction that first takes the code's row
(`uses < max_uses`, not revoked, not expired), then records the account's redemption (one per
account per code), then grants the credits: concurrent redemptions of a code with N uses
admit exactly N, and an account never twice.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection, select, update

from faregate.admin import ops
from faregate.admin.audit import write_lock
from faregate.admin.ops import AdminError, _plain
from faregate.admin.users import insert_ignore
from faregate.auth.keys import KeyHasher, display_prefix
from faregate.billing.store import new_id, now_ms
from faregate.db.schema import redemption_codes, redemptions

CODE_PREFIX = "fgc-"
MAX_LIMIT = 1000
MAX_USES = 2**31 - 1  # `max_uses` and `uses` are 32-bit integer columns


class CodeRefused(AdminError):
    """A redemption that cannot be done; `code` is the machine-readable reason."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message, status, code=code)


def generate_code() -> str:
    return CODE_PREFIX + secrets.token_urlsafe(18)


def _view(row: Any) -> dict[str, Any]:
    data = _plain(row)
    data.pop("code_hash", None)
    return data


def _code_row(conn: Connection, code_id: str) -> dict[str, Any]:
    row = conn.execute(select(redemption_codes).where(redemption_codes.c.id == code_id))
    found = row.mappings().first()
    if found is None:
        raise AdminError(f"no redemption code {code_id!r}", 404)
    return _view(found)


def create_code(
    conn: Connection,
    hasher: KeyHasher,
    amount: int,
    *,
    max_uses: int = 1,
    expires_at: int | None = None,
) -> tuple[dict[str, Any], str]:
    """A new code worth `amount` micro-credits to each of up to `max_uses` accounts:
    (its record, the code itself, shown this once only)."""
    if ops.check_amount(amount, "amount") == 0:
        raise AdminError("amount must be a positive number of micro-credits", 422, param="amount")
    if isinstance(max_uses, bool) or not 1 <= max_uses <= MAX_USES:
        raise AdminError(f"max_uses must be from 1 to {MAX_USES}", 422, param="max_uses")
    ts = now_ms()
    if expires_at is not None and expires_at <= ts:
        raise AdminError("expires_at (epoch milliseconds) is in the past", 422)
    code = generate_code()
    row = {
        "id": new_id("code"),
        "code_hash": hasher(code),
        "prefix": display_prefix(code),
        "amount": amount,
        "max_uses": max_uses,
        "uses": 0,
        "expires_at": expires_at,
        "revoked_at": None,
        "created_at": ts,
    }
    conn.execute(redemption_codes.insert().values(**row))
    return _view(row), code


def list_codes(
    conn: Connection, *, limit: int = 100, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Codes by id (a cursor is the last id of the previous page)."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(redemption_codes).order_by(redemption_codes.c.id).limit(limit + 1)
    if cursor is not None:
        stmt = stmt.where(redemption_codes.c.id > cursor)
    rows = [_view(r) for r in conn.execute(stmt).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1]["id"]) if more else None)


def get_code(conn: Connection, code_id: str) -> dict[str, Any]:
    """The code and the accounts that redeemed it."""
    code = _code_row(conn, code_id)
    rows = conn.execute(
        select(redemptions.c.account_id, redemptions.c.created_at)
        .where(redemptions.c.code_id == code_id)
        .order_by(redemptions.c.created_at)
    ).mappings()
    return {**code, "redemptions": [_plain(r) for r in rows]}


def revoke_code(conn: Connection, code_id: str) -> dict[str, Any]:
    """No more redemptions of the code (those made stay). Revoking twice changes nothing."""
    write_lock(conn)
    code = _code_row(conn, code_id)
    if code["revoked_at"] is None:
        ts = now_ms()
        conn.execute(
            update(redemption_codes).where(redemption_codes.c.id == code_id).values(revoked_at=ts)
        )
        code["revoked_at"] = ts
    return code


def _refusal(conn: Connection, code_hash: str, ts: int) -> CodeRefused:
    """Why the code could not be taken (read after the conditional update found nothing)."""
    row = conn.execute(
        select(redemption_codes).where(redemption_codes.c.code_hash == code_hash)
    ).mappings()
    code = row.first()
    if code is None:
        return CodeRefused("This redemption code is not valid.", 404, "invalid_code")
    if code["revoked_at"] is not None:
        return CodeRefused("This redemption code has been revoked.", 409, "code_revoked")
    if code["expires_at"] is not None and code["expires_at"] <= ts:
        return CodeRefused("This redemption code has expired.", 409, "code_expired")
    return CodeRefused("This redemption code has been used up.", 409, "code_used_up")


def redeem(conn: Connection, hasher: KeyHasher, code: str, account_id: str) -> dict[str, Any]:
    """Credit the account with the code's amount, once: {code_id, account_id, amount,
    balance}. Refusals are `CodeRefused` (404 unknown code, 409 revoked, expired, used up
    or already redeemed by this account); a refused redemption changes nothing."""
    ts = now_ms()
    code_hash = hasher(code.strip())
    ops._account_row(conn, account_id)
    # The conditional update is the first write: it takes the code's row lock (PostgreSQL)
    # or the database's write lock (SQLite), so concurrent redemptions run one at a time.
    taken = conn.execute(
        update(redemption_codes)
        .where(
            redemption_codes.c.code_hash == code_hash,
            redemption_codes.c.uses < redemption_codes.c.max_uses,
            redemption_codes.c.revoked_at.is_(None),
            redemption_codes.c.expires_at.is_(None) | (redemption_codes.c.expires_at > ts),
        )
        .values(uses=redemption_codes.c.uses + 1)
        .returning(redemption_codes.c.id, redemption_codes.c.amount)
    ).first()
    if taken is None:
        raise _refusal(conn, code_hash, ts)
    code_id, amount = str(taken.id), int(taken.amount)
    if not insert_ignore(
        conn, redemptions, {"code_id": code_id, "account_id": account_id, "created_at": ts}
    ):
        raise CodeRefused(
            "This account has already redeemed this code.", 409, "code_already_redeemed"
        )
    balance = ops.grant(conn, account_id, amount, f"redemption code {code_id}")
    return {"code_id": code_id, "account_id": account_id, "amount": amount, "balance": balance}
