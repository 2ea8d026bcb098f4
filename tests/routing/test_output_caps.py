"""The default output cap of a model from its upstreams' published caps."""

from __future__ import annotations

import pytest

from faregate.config_load import parse_config
from faregate.routing.catalog import build_catalog
from faregate.routing.output_caps import DEFAULT_CAP, default_cap, known_cap

PRICE = {"input": 1, "output": 1}


@pytest.mark.parametrize(
    ("upstream", "cap"),
    [
        ("claude-sonnet-4-5-20250929", 64000),
        ("claude-opus-4-1", 32000),
        ("claude-opus-4-6", 128000),
        ("anthropic/claude-3-5-haiku-latest", 8192),
        ("claude-3-haiku-20240307", 4096),
        ("gpt-4o-mini", 16384),
        ("gpt-5-mini", 128000),
        ("o1-mini", 65536),
        ("models/gemini-2.5-flash", 65536),
        ("deepseek-chat", 8192),
        ("my-local-llama", None),
    ],
)
def test_known_caps_by_longest_prefix(upstream: str, cap: int | None) -> None:
    assert known_cap(upstream) == cap


def test_a_model_takes_the_smallest_cap_of_its_upstreams() -> None:
    assert default_cap(["claude-sonnet-4-5", "claude-opus-4-1"]) == 32000
    assert default_cap(["gpt-4o", "my-local-llama"]) == DEFAULT_CAP == 4096
    assert default_cap([]) == DEFAULT_CAP


def test_the_catalog_uses_the_config_value_else_the_published_cap() -> None:
    config = parse_config(
        {
            "providers": {"ant": {"vendor": "anthropic", "api_key": "k"}},
            "models": {
                "sonnet": {"provider": "ant", "upstream": "claude-sonnet-4-5", "price": PRICE},
                "set": {
                    "provider": "ant",
                    "upstream": "claude-sonnet-4-5",
                    "max_output_tokens": 1000,
                    "price": PRICE,
                },
                "local": {"provider": "ant", "upstream": "house-model", "price": PRICE},
            },
        },
        "test",
    )
    catalog = build_catalog(config)
    caps = {name: entry.max_output_tokens for name, entry in catalog.models.items()}
    assert caps == {"sonnet": 64000, "set": 1000, "local": 4096}
