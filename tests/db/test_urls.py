"""Database URLs as an operator sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from faregate.db.urls import display_url


def test_a_sqlite_file_is_shown_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert display_url("sqlite:///.faregate/faregate.db") == (
        f"sqlite:///{tmp_path.resolve() / '.faregate' / 'faregate.db'}"
    )


def test_a_postgres_password_is_masked() -> None:
    assert display_url("postgresql://fg:s3cret@db.internal:5432/fg") == (
        "postgresql://fg:***@db.internal:5432/fg"
    )
    assert display_url("postgresql://fg@db:5432/fg") == "postgresql://fg@db:5432/fg"
