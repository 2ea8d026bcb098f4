"""OpenAI-compatible responses, whatever protocol served them, validate against the official
OpenAI OpenAPI schemas (../shared/specs/openai-openapi.yaml, or FAREGATE_TEST_OPENAI_SPEC);
a clone without the spec beside it skips them, saying so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import Gateway, Sim, protocol_models, start_gateway, stop
from openai_spec import SPEC, load_components, requires_spec
from openai_spec import validate as _validate

pytestmark = requires_spec
MODELS = ("m-openai", "m-anthropic", "m-gemini")


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    return load_components()


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(sim.url, tmp_path_factory.mktemp("shapes"), extra_models=protocol_models())
    yield g
    stop(g.proc)


@pytest.fixture(scope="module")
def key(gw: Gateway) -> str:
    return gw.account(100_000_000)[1]


def _post(gw: Gateway, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    r = httpx.post(gw.url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=20)
    assert r.status_code == 200, r.text
    return r


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("variant", ["text", "tools", "json"])
def test_chat_completion(
    gw: Gateway, key: str, components: dict[str, Any], model: str, variant: str
) -> None:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    }
    if variant == "tools":
        body["tools"] = TOOLS
    if variant == "json":
        body["response_format"] = {"type": "json_object"}
    _validate(
        components,
        "CreateChatCompletionResponse",
        _post(gw, key, "/v1/chat/completions", body).json(),
    )


@pytest.mark.parametrize("model", MODELS)
def test_chat_completion_chunks(
    gw: Gateway, key: str, components: dict[str, Any], model: str
) -> None:
    body = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    text = _post(gw, key, "/v1/chat/completions", body).text
    chunks = [
        json.loads(line[6:])
        for line in text.split("\n")
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    assert len(chunks) > 2
    for chunk in chunks:
        _validate(components, "CreateChatCompletionStreamResponse", chunk)


@pytest.mark.parametrize("model", ["embed-sim"])
def test_embeddings(gw: Gateway, key: str, components: dict[str, Any], model: str) -> None:
    body = {"model": model, "input": ["a", "b"], "encoding_format": "float"}
    _validate(components, "CreateEmbeddingResponse", _post(gw, key, "/v1/embeddings", body).json())


def test_models(gw: Gateway, key: str, components: dict[str, Any]) -> None:
    headers = {"authorization": f"Bearer {key}"}
    listing = httpx.get(gw.url + "/v1/models", headers=headers, timeout=10).json()
    _validate(components, "ListModelsResponse", listing)
    one = httpx.get(gw.url + "/v1/models/m-gemini", headers=headers, timeout=10).json()
    _validate(components, "Model", one)


def test_spec_is_the_whole_one() -> None:
    assert SPEC.stat().st_size > 1_000_000
