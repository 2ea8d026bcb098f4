"""The operator CLI against a fresh SQLite database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from faregate.cli import main
from faregate.db import migrate


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI against a server's database: one that exists (the server created it)."""
    monkeypatch.setenv("FAREGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FAREGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("FAREGATE_CONFIG", raising=False)
    monkeypatch.delenv("FAREGATE_SECRET_KEY", raising=False)
    asyncio.run(migrate.upgrade(f"sqlite:///{tmp_path / 'cli.db'}"))
    return CliRunner()


def _json(cli: CliRunner, *args: str) -> object:
    result = cli.invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_accounts_credits_keys_and_ledger(cli: CliRunner) -> None:
    account = _json(cli, "accounts", "create", "acme", "--credits", "500")
    assert isinstance(account, dict)
    acct = account["id"]
    assert account["balance"] == 500
    assert _json(cli, "grant", acct, "250", "--note", "top-up") == {
        "account_id": acct,
        "balance": 750,
    }
    assert [a["id"] for a in _json(cli, "accounts", "list")] == [acct]  # type: ignore[union-attr]
    shown = _json(cli, "accounts", "show", acct)
    assert shown == {**shown, "balance": 750, "held": 0, "open_holds": 0}  # type: ignore[dict-item]

    key = _json(
        cli, "keys", "create", acct, "--name", "ci", "--model", "gpt-4o", "--expires-in-days", "1"
    )
    assert isinstance(key, dict)
    assert key["key"].startswith("fg-") and key["allowed_models"] == ["gpt-4o"]
    assert key["prefix"] == key["key"][:10] and "key_hash" not in key
    listed = _json(cli, "keys", "list", acct)
    assert [k["id"] for k in listed] == [key["id"]]  # type: ignore[union-attr]
    assert "key" not in listed[0]  # type: ignore[index]  # never shown again
    revoked = _json(cli, "keys", "revoke", key["id"])
    assert revoked["revoked_at"]  # type: ignore[index]

    entries = _json(cli, "ledger", acct)
    assert [e["amount"] for e in entries] == [250, 500]  # type: ignore[union-attr]
    assert sum(e["amount"] for e in entries) == 750  # type: ignore[union-attr]


def test_refusals_are_clear(cli: CliRunner) -> None:
    acct = _json(cli, "accounts", "create", "a")["id"]  # type: ignore[index]
    result = cli.invoke(main, ["grant", acct, "--", "-5"])
    assert result.exit_code != 0 and "below zero" in result.output
    result = cli.invoke(main, ["accounts", "show", "acct_missing"])
    assert result.exit_code != 0 and "no account" in result.output


def test_amounts_outside_the_range_are_refused(cli: CliRunner) -> None:
    for credits in (str(2**63), "1000000000000001", "-1"):
        result = cli.invoke(main, ["accounts", "create", "rich", "--credits", credits])
        assert result.exit_code == 2 and "--credits" in result.output, result.output
    acct = _json(cli, "accounts", "create", "a", "--credits", "1000000000000000")["id"]  # type: ignore[index]
    result = cli.invoke(main, ["grant", acct, str(2**63)])
    assert result.exit_code == 2 and "AMOUNT" in result.output, result.output
    result = cli.invoke(main, ["grant", acct, "1"])
    assert result.exit_code == 1 and "above" in result.output, result.output
    entries = _json(cli, "ledger", acct)
    assert [e["amount"] for e in entries] == [10**15]  # type: ignore[union-attr]
    assert [a["name"] for a in _json(cli, "accounts", "list")] == ["a"]  # type: ignore[union-attr]


def test_check_config(cli: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[providers.p]\nvendor = "openai"\n[models.m]\nprovider = "p"\n'
        "price = { input = 1, output = 2 }\n"
    )
    result = cli.invoke(main, ["check-config", str(good)])
    assert result.exit_code == 0 and "1 providers, 1 models" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    result = cli.invoke(main, ["check-config", str(bad)])
    assert result.exit_code != 0
    assert "bad.toml" in result.output and "server.port" in result.output


def test_workers_without_redis_are_refused_when_limits_apply(
    cli: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "limited.toml"
    config.write_text(
        '[providers.p]\nvendor = "openai"\n[models.m]\nprovider = "p"\n'
        "price = { input = 1, output = 2 }\n"
        '[limits]\ndefault_plan = "free"\n[plans.free.chat]\nrpm = 10\n'
    )
    result = cli.invoke(main, ["serve", "--config", str(config), "--workers", "2"])
    assert result.exit_code != 0
    assert "limits.redis_url" in result.output


def test_sim_tls_key_needs_a_certificate(cli: CliRunner, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("unused")
    result = cli.invoke(main, ["sim", "--tls-key", str(key)])
    assert result.exit_code == 2
    assert "--tls-key needs --tls-cert" in result.output


def test_commands_say_which_database_they_used(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(main, ["accounts", "list"], catch_exceptions=False)
    assert result.exit_code == 0
    assert f"database: sqlite:///{tmp_path / 'cli.db'}" in result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize(
    "args",
    [
        ["accounts", "create", "acme", "--credits", "5"],
        ["accounts", "list"],
        ["grant", "acct_x", "5"],
        ["keys", "create", "acct_x"],
        ["ledger", "acct_x"],
    ],
)
def test_a_command_that_would_create_a_new_database_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """Run from another folder than the server's: no `.faregate/faregate.db` there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for name in ("FAREGATE_HOME", "FAREGATE_DATABASE_URL", "FAREGATE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    looked = elsewhere / ".faregate" / "faregate.db"
    assert f"no database at {looked}" in result.output
    assert "FAREGATE_HOME" in result.output and "FAREGATE_DATABASE_URL" in result.output
    assert not (elsewhere / ".faregate").exists()  # neither a database nor a secret
