"""The catalog: each deployment carries the adapter of its model's kind; routes ask by kind."""

from __future__ import annotations

import pytest

from faregate.config import Config
from faregate.errors import BadRequest, NotFound
from faregate.kinds import Kind
from faregate.providers.gemini import GeminiEmbeddings, GeminiGenerate
from faregate.providers.openai import OpenAIChat, OpenAIEmbeddings
from faregate.routing.catalog import build_catalog

PRICE = {"input": 1, "output": 1}
CONFIG = Config.model_validate(
    {
        "providers": {
            "oa": {"base_url": "http://127.0.0.1:9000/v1"},
            "gm": {"base_url": "http://127.0.0.1:9001", "protocol": "gemini"},
        },
        "models": {
            "chat": {
                "deployments": [{"provider": "oa"}, {"provider": "gm"}],
                "price": PRICE,
            },
            "vectors": {
                "kind": "embedding",
                "deployments": [{"provider": "oa"}, {"provider": "gm"}],
                "price": PRICE,
            },
        },
    }
)


def test_each_deployment_has_the_adapter_of_its_models_kind() -> None:
    catalog = build_catalog(CONFIG)
    chat, vectors = catalog.models["chat"], catalog.models["vectors"]
    assert (chat.kind, vectors.kind) == (Kind.CHAT, Kind.EMBEDDINGS)
    assert [type(d.adapter) for d in chat.deployments] == [OpenAIChat, GeminiGenerate]
    assert [type(d.adapter) for d in vectors.deployments] == [OpenAIEmbeddings, GeminiEmbeddings]


def test_a_route_gets_models_of_its_kind_only() -> None:
    catalog = build_catalog(CONFIG)
    assert catalog.get("chat") is catalog.models["chat"]
    assert catalog.get("vectors", Kind.EMBEDDINGS) is catalog.models["vectors"]
    with pytest.raises(BadRequest) as err:
        catalog.get("vectors")
    assert err.value.code == "wrong_model_kind" and "embeddings" in err.value.message
    with pytest.raises(NotFound):
        catalog.get("nope", Kind.EMBEDDINGS)
