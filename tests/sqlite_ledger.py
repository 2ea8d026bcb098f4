"""Test helpers for the SQLite ledger: a started store on a migrated file with one funded
account, and a cursor whose next COMMIT fails as a full disk would."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from faregate.billing.sqlite import SqliteStore
from faregate.db import migrate


async def started_store(path: Path, account: str, balance: int = 1_000_000) -> SqliteStore:
    """A started store on a freshly migrated `path` holding `account` with `balance`."""
    await migrate.upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO accounts (id, name, balance, created_at) VALUES (?, 'a', ?, 0)",
            (account, balance),
        )
    store = SqliteStore(path)
    await store.start()
    return store


class FailingCommit:
    """The store's cursor, with its next COMMIT failing as a full disk would."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.cursor = cursor
        self.fail = True

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.fail:
            self.fail = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.cursor.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)
