"""App start: an operator admin key short enough to guess is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from faregate.app import MIN_ADMIN_KEY_LENGTH, App, Environment
from faregate.cli import main
from faregate.config import Config, ConfigError


def _env(tmp_path: Path, admin_key: str) -> Environment:
    return Environment.from_env(
        {
            "FAREGATE_HOME": str(tmp_path),
            "FAREGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
            "FAREGATE_ADMIN_KEY": admin_key,
        }
    )


@pytest.mark.parametrize("key", ["Q", "fga-test-admin-key", "k" * 31])
def test_a_short_admin_key_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        App(Config(), _env(tmp_path, key))
    assert "FAREGATE_ADMIN_KEY" in str(err.value)
    assert f"at least {MIN_ADMIN_KEY_LENGTH}" in str(err.value)
    assert key not in str(err.value)  # the key itself is not echoed


def test_a_long_enough_or_absent_admin_key_is_accepted(tmp_path: Path) -> None:
    assert App(Config(), _env(tmp_path, "k" * 32)).env.admin_key == "k" * 32
    assert App(Config(), _env(tmp_path, "")).env.admin_key is None  # one is made at first start


def test_serve_refuses_a_short_admin_key_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAREGATE_HOME", str(tmp_path))
    monkeypatch.setenv("FAREGATE_ADMIN_KEY", "too-short")
    monkeypatch.delenv("FAREGATE_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert "FAREGATE_ADMIN_KEY is 9 characters long; it must be at least 32" in result.output
