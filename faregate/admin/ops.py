"""Operator actions as single transactions over SQLAlchemy Core.

Each action is a plain function of a synchronous connection, run whole through
`AsyncConnection.run_sync`, so no transaction ever waits on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, update

from faregate.admin.audit import write_lock
from faregate.auth import restrictions
from faregate.auth.keys import ADMIN_PREFIX, KeyHasher, display_prefix, generate_key
from faregate.billing import bounds
from faregate.billing.spend import PERIODS
from faregate.billing.store import new_id, now_ms
from faregate.db.schema import accounts, admin_keys, api_keys, holds, ledger
from faregate.guards.config import check_key_guards
from faregate.limits.config import LimitsConfigError, check_overrides


class AdminError(Exception):
    """An operator action that cannot be done; `status` is the HTTP status to report,
    `param` the field at fault (if one is), `code` a machine-readable reason (if any)."""

    code: str | None = None

    def __init__(
        self, message: str, status: int = 400, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        if code is not None:
            self.code = code


BALANCE_TOO_LARGE = "balance_too_large"


def _plain(row: Any) -> dict[str, Any]:
    """A result row as a dict with plain `str` keys (for JSON)."""
    return {str(k): v for k, v in row.items()}


def _account_row(conn: Connection, account_id: str) -> dict[str, Any]:
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first()
    if row is None:
        raise AdminError(f"no account {account_id!r}", 404)
    return _account_view(row)


def _account_view(row: Any) -> dict[str, Any]:
    data = _plain(row)
    for name in ("limits", "restrictions"):
        if data.get(name):
            data[name] = orjson.loads(data[name])
    return data


def create_account(conn: Connection, name: str) -> dict[str, Any]:
    account = {"id": new_id("acct"), "name": name, "balance": 0, "created_at": now_ms()}
    conn.execute(accounts.insert().values(**account))
    return account


def get_account(conn: Connection, account_id: str) -> dict[str, Any]:
    account = _account_row(conn, account_id)
    held = conn.execute(
        select(func.coalesce(func.sum(holds.c.amount), 0), func.count(holds.c.id)).where(
            holds.c.account_id == account_id, holds.c.status == "open"
        )
    ).one()
    return {**account, "held": int(held[0]), "open_holds": int(held[1])}


def list_accounts(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(accounts).order_by(accounts.c.created_at)).mappings()
    return [_account_view(r) for r in rows]


def check_amount(value: Any, field: str, *, signed: bool = False) -> int:
    """`value` as an amount of micro-credits within the one range, else a 422 naming `field`."""
    if not bounds.in_range(value, signed=signed):
        span = bounds.SIGNED_RANGE_TEXT if signed else bounds.RANGE_TEXT
        raise AdminError(
            f"{field} must be a whole number of micro-credits from {span}", 422, param=field
        )
    return int(value)


def _funds(conn: Connection, account_id: str) -> tuple[int, int]:
    """(balance, held in open holds) of the account, read under the lock its grant takes:
    the database's write lock on SQLite, the account's row on PostgreSQL (a hold debits that
    row, so every hold taken before is committed and counted)."""
    write_lock(conn)
    stmt = select(accounts.c.balance).where(accounts.c.id == account_id)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    balance = conn.execute(stmt).scalar_one_or_none()
    if balance is None:
        raise AdminError(f"no account {account_id!r}", 404)
    held = conn.execute(
        select(func.coalesce(func.sum(holds.c.amount), 0)).where(
            holds.c.account_id == account_id, holds.c.status == "open"
        )
    ).scalar_one()
    return int(balance), int(held)


def grant(conn: Connection, account_id: str, amount: int, note: str | None = None) -> int:
    """Add (or, negative, take back) credits; returns the new balance. Never below zero;
    never above `bounds.MAX_AMOUNT` with what open holds may give back (409, nothing
    changed), so no refund can take a balance past the bound either."""
    amount = check_amount(amount, "amount", signed=True)
    if amount == 0:
        raise AdminError("amount must not be zero", param="amount")
    balance, held = _funds(conn, account_id)
    if balance + amount < 0:
        raise AdminError("the balance cannot go below zero", 409)
    if amount > 0 and balance + held + amount > bounds.MAX_AMOUNT:
        raise AdminError(
            f"the balance cannot go above {bounds.MAX_AMOUNT:_} micro-credits (the largest"
            f" balance; {balance} and {held} held now): nothing was granted",
            409,
            code=BALANCE_TOO_LARGE,
        )
    new_balance = accounts.c.balance + amount
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(balance=new_balance))
    conn.execute(
        ledger.insert().values(
            account_id=account_id,
            kind="grant" if amount > 0 else "adjust",
            amount=amount,
            note=note,
            estimated=False,
            created_at=now_ms(),
        )
    )
    return int(
        conn.execute(select(accounts.c.balance).where(accounts.c.id == account_id)).scalar_one()
    )


def _key_view(row: Any) -> dict[str, Any]:
    data = _plain(row)
    data.pop("key_hash", None)
    for name in ("allowed_models", "limits", "restrictions", "guards"):
        value = data.get(name)
        data[name] = orjson.loads(value) if value else None
    return data


def create_key(
    conn: Connection,
    hasher: KeyHasher,
    account_id: str,
    name: str,
    *,
    models: Sequence[str] | None = None,
    expires_at: int | None = None,
) -> tuple[dict[str, Any], str]:
    """A new key for the account: its record and the key itself, shown this once only.
    `models` None allows every model; an empty list is refused (a key that can do nothing)."""
    _account_row(conn, account_id)
    if models is not None and not list(models):
        raise AdminError("models must name at least one model (leave it out to allow all)")
    key = generate_key()
    row = {
        "id": new_id("key"),
        "account_id": account_id,
        "name": name,
        "key_hash": hasher(key),
        "prefix": display_prefix(key),
        "allowed_models": orjson.dumps(list(models)).decode() if models else None,
        "expires_at": expires_at,
        "revoked_at": None,
        "created_at": now_ms(),
    }
    conn.execute(api_keys.insert().values(**row))
    return _key_view(row), key


def list_keys(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    _account_row(conn, account_id)
    rows = conn.execute(
        select(api_keys).where(api_keys.c.account_id == account_id).order_by(api_keys.c.created_at)
    ).mappings()
    return [_key_view(r) for r in rows]


def revoke_key(conn: Connection, key_id: str) -> tuple[dict[str, Any], str]:
    """Revoke a key: (its record, its hash for the caller to evict from caches)."""
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
    if row is None:
        raise AdminError(f"no key {key_id!r}", 404)
    if row["revoked_at"] is None:
        conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now_ms()))
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().one()
    return _key_view(row), str(row["key_hash"])


def ledger_entries(conn: Connection, account_id: str, limit: int = 100) -> list[dict[str, Any]]:
    _account_row(conn, account_id)
    rows = conn.execute(
        select(ledger)
        .where(ledger.c.account_id == account_id)
        .order_by(ledger.c.id.desc())
        .limit(limit)
    ).mappings()
    entries = [_plain(r) for r in rows]
    for entry in entries:  # {meter: count} billed beyond tokens; {} for everything else
        entry["units"] = orjson.loads(entry["units"]) if entry["units"] else {}
    return entries


def bootstrap_admin(conn: Connection, hasher: KeyHasher) -> str | None:
    """Create the first admin key if there is none; returns it (shown once) or None."""
    if conn.execute(select(func.count()).select_from(admin_keys)).scalar_one():
        return None
    key = generate_key(ADMIN_PREFIX)
    conn.execute(
        admin_keys.insert().values(
            id=new_id("adm"), key_hash=hasher(key), prefix=display_prefix(key), created_at=now_ms()
        )
    )
    return key


def is_admin(conn: Connection, key_hash: str) -> bool:
    found = conn.execute(select(admin_keys.c.id).where(admin_keys.c.key_hash == key_hash)).first()
    return found is not None


def _json_or_none(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _check_spend(fields: dict[str, Any]) -> None:
    limit, period = fields.get("spend_limit"), fields.get("spend_period")
    if limit is not None:
        check_amount(limit, "spend_limit")
    if period is not None and period not in PERIODS:
        raise AdminError(f"spend_period must be one of {', '.join(PERIODS)}")
    if ("spend_limit" in fields) != ("spend_period" in fields) and limit is not None:
        raise AdminError("set spend_limit and spend_period together")


def _check_limits(limits: Any) -> Any:
    if limits is None:
        return None
    try:
        return check_overrides(limits)
    except LimitsConfigError as exc:
        raise AdminError(f"limits: {exc}") from None


def _checked_restrictions(doc: Any) -> str | None:
    """A restrictions document as stored, or AdminError naming what is wrong."""
    try:
        restrictions.validate(doc or {})
    except restrictions.RestrictionError as exc:
        raise AdminError(f"restrictions: {exc}") from None
    return _json_or_none(doc or None)


def update_account(conn: Connection, account_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Change an account's plan, limit overrides or spend limit (None clears a field)."""
    _account_row(conn, account_id)
    _check_spend(fields)
    limits = _check_limits(fields.get("limits"))
    values = {k: v for k, v in fields.items() if k in ("plan", "spend_limit", "spend_period")}
    if "restrictions" in fields:
        values["restrictions"] = _checked_restrictions(fields["restrictions"])
    if "limits" in fields:
        values["limits"] = _json_or_none(limits)
    if values:
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
    return get_account(conn, account_id)


def update_key(conn: Connection, key_id: str, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Change a key's models, restrictions, limit overrides, spend limit or expiry; returns
    (its record, its hash for the caller to evict from caches)."""
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
    if row is None:
        raise AdminError(f"no key {key_id!r}", 404)
    _check_spend(fields)
    expires_at = fields.get("expires_at")
    if expires_at is not None and (
        not bounds.in_range(expires_at) or expires_at > bounds.MAX_EPOCH_MS
    ):
        raise AdminError("expires_at must be epoch milliseconds, or null", 422, param="expires_at")
    limits = _check_limits(fields.get("limits"))
    values: dict[str, Any] = {
        k: v
        for k, v in fields.items()
        if k in ("name", "spend_limit", "spend_period", "expires_at")
    }
    if "restrictions" in fields:
        values["restrictions"] = _checked_restrictions(fields["restrictions"])
    if "guards" in fields:
        try:
            values["guards"] = _json_or_none(check_key_guards(fields["guards"]))
        except ValueError as exc:
            raise AdminError(str(exc)) from None
    if "limits" in fields:
        values["limits"] = _json_or_none(limits)
    if "models" in fields:
        models = fields["models"]
        if models is not None and not models:
            raise AdminError("models must name at least one model (null allows all)")
        values["allowed_models"] = _json_or_none(models)
    if values:
        conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().one()
    return _key_view(row), str(row["key_hash"])
