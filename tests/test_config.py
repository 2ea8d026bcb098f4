"""Strict config validation: every refusal names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from faregate.config import ConfigError, Model
from faregate.config_load import default_config, load_config
from faregate.kinds import ALIASES, Kind
from faregate.providers.registry import ADAPTERS, kinds_of

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
        (GOOD + "\n[database]\npool_size = 0\n", "database.pool_size"),
        (
            GOOD + "\n[server]\nprot = 1\n",
            "allowed here: cors, host, max_body_bytes, max_part_bytes, max_parts, port",
        ),
        (GOOD.replace("input = 100", 'input = "a lot"'), "models.m-1.price.input"),
        (GOOD.replace("input = 100", "input = 1.5"), "models.m-1.price.input"),
        (GOOD.replace("input = 100", "input = -1"), "greater than or equal to 0"),
        (GOOD.replace("input = 100", f"input = {2**63}"), "models.m-1.price.input"),
        (GOOD.replace("output = 200", "output = 1_000_000_000_000_001"), "less than or equal to"),
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


def test_the_zero_config_default_serves_an_embedding_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = default_config().models["text-embedding-3-small"]
    assert (model.kind, model.provider) == (Kind.EMBEDDINGS, "simulator")
    assert (model.price.input, model.price.output) == (20_000, 0)


def test_the_zero_config_default_serves_an_image_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = default_config().models["dall-e-3"]
    assert (model.kind, model.provider, model.price.image) == (Kind.IMAGES, "simulator", 40_000)
    assert model.price.images is not None and model.price.images["1024x1792/hd"] == 120_000
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    assert default_config().models["dall-e-3"].provider == "openai"


def test_secrets_are_not_required_in_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = default_config()
    assert cfg.simulator.enabled
    assert {m.provider for m in cfg.models.values()} == {"simulator"}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    cfg = default_config()
    assert cfg.models["gpt-4o"].provider == "openai"
    assert cfg.models["text-embedding-3-small"].provider == "openai"
    assert cfg.providers["openai"].resolve_key() == "sk-real"
    assert cfg.providers["openai"].url == "https://api.openai.com/v1"


# -- kinds ----------------------------------------------------------------------------------

KINDS = """
[providers.oa]
base_url = "http://127.0.0.1:9000/v1"

[providers.claude]
base_url = "http://127.0.0.1:9001"
protocol = "anthropic"
"""


def _model(name: str, kind: str, provider: str) -> str:
    return (
        f'\n[models."{name}"]\nkind = "{kind}"\nprovider = "{provider}"\n'
        "price = { input = 1, output = 1 }\n"
    )


@pytest.mark.parametrize(
    ("given", "stored"),
    [*((k.value, k) for k in Kind), *ALIASES.items()],
)
def test_every_kind_and_alias_is_accepted_and_stored_canonical(given: str, stored: Kind) -> None:
    model = Model.model_validate(
        {"kind": given, "provider": "p", "price": {"input": 1, "output": 1}}
    )
    assert model.kind is stored


def test_the_legacy_embedding_kind_still_loads(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, KINDS + _model("e", "embedding", "oa")))
    assert cfg.models["e"].kind is Kind.EMBEDDINGS


def test_an_unknown_kind_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, KINDS + _model("x", "painting", "oa")))
    assert "models.x.kind" in str(err.value) and "images" in str(err.value)


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (
            _model("e", "embeddings", "claude"),
            "models.e.provider: the model 'e' is of kind 'embeddings', but the provider 'claude'"
            " speaks the 'anthropic' protocol, which serves chat",
        ),
        (
            _model("img", "images", "claude"),
            "the model 'img' is of kind 'images', but the provider 'claude' speaks the"
            " 'anthropic' protocol, which serves chat",
        ),
    ],
)
def test_a_model_its_provider_cannot_serve_is_refused(
    tmp_path: Path, models: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, KINDS + models))
    assert expected in str(err.value)


def test_a_provider_declares_the_kinds_it_serves(tmp_path: Path) -> None:
    text = KINDS + '\n[providers.embedder]\nbase_url = "http://127.0.0.1:9002/v1"\n'
    text += 'kinds = ["embedding"]\n'
    cfg = load_config(_write(tmp_path, text + _model("e", "embeddings", "embedder")))
    assert cfg.providers["embedder"].kinds == [Kind.EMBEDDINGS]
    assert cfg.providers["embedder"].serves() == (Kind.EMBEDDINGS,)
    deployed = (
        '\n[models.c]\nprice = { input = 1, output = 1 }\n[[models.c.deployments]]\nprovider = "oa"'
        '\n[[models.c.deployments]]\nprovider = "embedder"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text + deployed))
    assert (
        "models.c.deployments.1.provider: the model 'c' is of kind 'chat', but the provider"
        " 'embedder' declares kinds = [embeddings]; put the model on a provider that serves chat"
    ) in str(err.value)


def test_a_protocol_serves_a_new_kind_with_one_registry_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = KINDS + _model("img", "image", "claude")
    with pytest.raises(ConfigError):
        load_config(_write(tmp_path, text))
    adapter = "faregate.providers.anthropic:AnthropicMessages"
    monkeypatch.setitem(ADAPTERS, ("anthropic", Kind.IMAGES), adapter)
    assert kinds_of("anthropic") == (Kind.CHAT, Kind.IMAGES)
    assert load_config(_write(tmp_path, text)).models["img"].kind is Kind.IMAGES
