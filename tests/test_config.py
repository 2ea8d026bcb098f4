"""Strict config validation: every refusal names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from faregate.config import ConfigError, default_config, load_config, parse_config

GOOD = """
[providers.up]
base_url = "http://127.0.0.1:9000/v1"
api_key_env = "UP_KEY"

[models."m-1"]
provider = "up"
upstream = "real-name"
price = { input = 100, output = 200, cached_input = 50 }
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "faregate.toml"
    p.write_text(text)
    return p


def test_good_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UP_KEY", "secret")
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.models["m-1"].upstream == "real-name"
    assert cfg.providers["up"].resolve_key() == "secret"
    assert cfg.database.url.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "\n[server]\nprot = 1\n", "server.prot: unknown key"),
        (GOOD + "\n[server]\nprot = 1\n", "allowed here: cors, host, max_body_bytes, port"),
        (GOOD.replace("input = 100", 'input = "a lot"'), "models.m-1.price.input"),
        (GOOD.replace("input = 100", "input = 1.5"), "models.m-1.price.input"),
        (GOOD.replace("input = 100", "input = -1"), "greater than or equal to 0"),
        (GOOD.replace('provider = "up"', 'provider = "nope"'), "unknown provider 'nope'"),
        (GOOD.replace("output = 200, ", ""), "models.m-1.price.output: required key is missing"),
        ('[providers.x]\nvendor = "acme"\n', "unknown vendor 'acme'"),
        ("[providers.x]\n", "set base_url (or a known vendor)"),
        ('[database]\nurl = "mysql://x"\n', "database.url"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_configs_are_refused_with_a_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_secrets_are_not_required_in_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = default_config()
    assert cfg.simulator.enabled
    assert {m.provider for m in cfg.models.values()} == {"simulator"}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    cfg = default_config()
    assert cfg.models["gpt-4o"].provider == "openai"
    assert cfg.providers["openai"].resolve_key() == "sk-real"
    assert cfg.providers["openai"].url == "https://api.openai.com/v1"


def test_a_missing_country_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"geo\.database"):
        parse_config({"geo": {"database": str(tmp_path / "none.mmdb")}}, "test.toml")
