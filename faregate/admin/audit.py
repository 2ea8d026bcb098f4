"""The audit log: who did what to which object, written in the same transaction as the action."""

from __future__ import annotations

import builtins
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, select, text

from faregate.auth.keys import display_prefix
from faregate.billing.store import now_ms
from faregate.db.schema import audit_log

T = TypeVar("T")
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """Every field left None matches all rows; `since`/`until` are epoch ms (until exclusive)."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: int | None = None
    until: int | None = None


def admin_actor(authorization: str, env_admin_key: str | None) -> str:
    """Who acts, from an authorized admin request's `Authorization` header: `admin:env` for
    FAREGATE_ADMIN_KEY, else `admin:` and the key's display prefix (`admin_keys.prefix`)."""
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    if env_admin_key and hmac.compare_digest(token, env_admin_key):
        return "admin:env"
    return f"admin:{display_prefix(token)}"


def write_lock(conn: Connection) -> None:
    """On SQLite, take the database's write lock first, so the reads an action makes before
    it writes are part of its transaction (pysqlite begins one only at the first write)."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("DELETE FROM audit_log WHERE 0 = 1"))


def record(
    conn: Connection,
    actor: str,
    action: str,
    target: str | None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """One audit row; call it inside the action's transaction so both commit or neither."""
    conn.execute(
        audit_log.insert().values(
            at=now_ms(),
            actor=actor[:64],
            action=action[:64],
            target=target[:80] if target is not None else None,
            detail=orjson.dumps(dict(detail), default=str).decode() if detail else None,
        )
    )


def audited(
    fn: Callable[[Connection], T],
    actor: str,
    action: str,
    target: str | Callable[[T], str | None] | None,
    detail: Mapping[str, Any] | Callable[[T], Mapping[str, Any] | None] | None = None,
) -> Callable[[Connection], T]:
    """`fn` followed, in the same transaction, by its audit row. `target` and `detail` may be
    functions of `fn`'s result (for an object the action creates).

    The result is rendered as JSON before the transaction ends: a reply that cannot be
    rendered (say an integer past 64 bits) raises here and rolls the action back, so an
    action never commits and then fails to answer (its retry would apply it twice)."""

    def act(conn: Connection) -> T:
        result = fn(conn)
        record(
            conn,
            actor,
            action,
            target(result) if callable(target) else target,
            detail(result) if callable(detail) else detail,
        )
        orjson.dumps(result)  # as `Response.json` will, after the commit
        return result

    return act


def _view(row: Any) -> dict[str, Any]:
    data = {str(k): v for k, v in row.items()}
    data["detail"] = orjson.loads(data["detail"]) if data["detail"] else None
    return data


def list_entries(
    conn: Connection, filters: AuditFilters, limit: int = 100, cursor: int | None = None
) -> tuple[builtins.list[dict[str, Any]], int | None]:
    """Newest first: (rows, the cursor of the next page or None). `cursor` is the last id
    of the previous page."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
    if cursor is not None:
        stmt = stmt.where(audit_log.c.id < cursor)
    if filters.actor is not None:
        stmt = stmt.where(audit_log.c.actor == filters.actor)
    if filters.action is not None:
        stmt = stmt.where(audit_log.c.action == filters.action)
    if filters.target is not None:
        stmt = stmt.where(audit_log.c.target == filters.target)
    if filters.since is not None:
        stmt = stmt.where(audit_log.c.at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(audit_log.c.at < filters.until)
    rows = [_view(r) for r in conn.execute(stmt).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (int(rows[-1]["id"]) if more else None)


list = list_entries  # the name the rest of the code base asks for
