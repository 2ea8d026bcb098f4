"""Database URLs: one operator-facing form, mapped to each driver's own."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///PATH` URL (relative to the working directory)."""
    return Path(url.split("sqlite:///", 1)[1])


def sqlalchemy_url(url: str) -> str:
    """The async SQLAlchemy URL for an operator URL."""
    if is_sqlite(url):
        return "sqlite+aiosqlite:///" + str(sqlite_path(url))
    rest = url.split("://", 1)[1]
    return "postgresql+asyncpg://" + rest


def asyncpg_dsn(url: str) -> str:
    """The DSN asyncpg accepts for an operator URL."""
    return "postgresql://" + url.split("://", 1)[1]


def display_url(url: str) -> str:
    """The URL to show an operator: a SQLite file's absolute path, a password masked."""
    if is_sqlite(url):
        return f"sqlite:///{sqlite_path(url).resolve()}"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
