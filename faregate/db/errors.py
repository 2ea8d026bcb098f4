"""The exceptions that mean "the database failed", whichever database is in use."""

from __future__ import annotations

import sqlite3
import sys


def storage_errors() -> tuple[type[BaseException], ...]:
    """SQLite's, the OS's and, once asyncpg is loaded (only with a PostgreSQL database), its
    errors. Evaluated where an exception is caught, so asyncpg is never imported for it."""
    pg = sys.modules.get("asyncpg")
    if pg is None:
        return (sqlite3.Error, OSError)
    return (sqlite3.Error, pg.PostgresError, pg.InterfaceError, OSError)
