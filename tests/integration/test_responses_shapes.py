"""Responses API and legacy completions replies, whatever protocol served them, validate
against the official OpenAI OpenAPI schemas (`Response`, each streamed event as a
`ResponseStreamEvent`, `ResponseItemList`, `CreateCompletionResponse`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import Gateway, Sim, responses_models, start_gateway, stop
from openai_spec import load_components, requires_spec
from openai_spec import validate as _validate

UPSTREAMS = ("m-openai", "m-anthropic", "m-gemini", "m-responses")
LEGACY = ("m-openai", "m-anthropic", "m-gemini", "m-legacy")
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

pytestmark = requires_spec


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    return load_components()


def _validate_event(components: dict[str, Any], event: dict[str, Any]) -> None:
    """A streamed event against the `ResponseStreamEvent` member its `type` names."""
    schemas = components["components"]["schemas"]
    for ref in schemas["ResponseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[1]
        if event["type"] in (schemas[name]["properties"]["type"].get("enum") or ()):
            _validate(components, name, event)
            return
    raise AssertionError(f"no ResponseStreamEvent has the type {event['type']!r}")


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(
        sim.url, tmp_path_factory.mktemp("rshapes"), extra_models=responses_models(sim.url)
    )
    yield g
    stop(g.proc)


@pytest.fixture(scope="module")
def key(gw: Gateway) -> str:
    return gw.account(100_000_000)[1]


def _post(gw: Gateway, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    r = httpx.post(gw.url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=20)
    assert r.status_code == 200, r.text
    return r


def _events(text: str) -> list[dict[str, Any]]:
    lines = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("variant", ["text", "tools", "json"])
def test_response(
    gw: Gateway, key: str, components: dict[str, Any], model: str, variant: str
) -> None:
    body: dict[str, Any] = {"model": model, "input": "What is the weather in Paris?"}
    if variant == "tools":
        body["tools"] = [WEATHER]
    if variant == "json":
        body["text"] = {"format": {"type": "json_object"}}
    response = _post(gw, key, "/v1/responses", body).json()
    _validate(components, "Response", response)
    headers = {"authorization": f"Bearer {key}"}
    stored = httpx.get(f"{gw.url}/v1/responses/{response['id']}", headers=headers, timeout=10)
    _validate(components, "Response", stored.json())
    items = httpx.get(
        f"{gw.url}/v1/responses/{response['id']}/input_items", headers=headers, timeout=10
    )
    _validate(components, "ResponseItemList", items.json())


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("variant", ["text", "tools", "reasoning"])
def test_stream_events(
    gw: Gateway, key: str, components: dict[str, Any], model: str, variant: str
) -> None:
    body: dict[str, Any] = {
        "model": model,
        "input": "What is the weather in Paris?",
        "stream": True,
    }
    if variant == "tools":
        body["tools"] = [WEATHER]
    if variant == "reasoning":
        body["reasoning"] = {"effort": "low"}
        body["max_output_tokens"] = 4000
    events = _events(_post(gw, key, "/v1/responses", body).text)
    if variant == "reasoning" and model in ("m-anthropic", "m-gemini"):
        assert "response.reasoning_text.delta" in [e["type"] for e in events]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    for event in events:
        _validate_event(components, event)


def test_incomplete_response(gw: Gateway, key: str, components: dict[str, Any]) -> None:
    body = {"model": "m-openai", "input": "Tell me a long story", "max_output_tokens": 16}
    response = _post(gw, key, "/v1/responses", body).json()
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    _validate(components, "Response", response)
    events = _events(_post(gw, key, "/v1/responses", {**body, "stream": True}).text)
    assert events[-1]["type"] == "response.incomplete"
    for event in events:
        _validate_event(components, event)


@pytest.mark.parametrize("model", LEGACY)
def test_completion(gw: Gateway, key: str, components: dict[str, Any], model: str) -> None:
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": 12}
    _validate(
        components, "CreateCompletionResponse", _post(gw, key, "/v1/completions", body).json()
    )
    chunks = _events(_post(gw, key, "/v1/completions", {**body, "stream": True}).text)
    assert chunks
    assert any(c["choices"] and c["choices"][0]["finish_reason"] for c in chunks)
    for chunk in chunks:
        # the one shape of both, but for a finish reason that is null until a choice ends (as
        # OpenAI streams it; the spec's enum has no null)
        for choice in chunk["choices"]:
            if choice["finish_reason"] is None:
                choice["finish_reason"] = "stop"
        _validate(components, "CreateCompletionResponse", chunk)
