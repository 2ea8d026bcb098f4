"""The conformance matrix: every client protocol against every upstream protocol, feature by
feature, end to end through a running gateway and the simulator.

Set FAREGATE_MATRIX_REPORT=PATH to write the matrix with each cell's pass state (Markdown);
docs/protocol-matrix.md is written that way.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Gateway, Sim, ledger_consistent, responses_models, start_gateway, stop

UPSTREAMS = {"openai": "m-openai", "anthropic": "m-anthropic", "gemini": "m-gemini"}
UPSTREAMS["openai-responses"] = "m-responses"
CLIENTS = ("openai", "anthropic", "gemini", "responses", "completions")
FEATURES = ("text", "streaming", "tools", "images", "json", "reasoning", "usage-and-cost", "errors")
PNG = base64.b64encode(
    base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
).decode()
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
RESULTS: dict[tuple[str, str, str], str] = {}


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(
        sim.url, tmp_path_factory.mktemp("matrix"), extra_models=responses_models(sim.url)
    )
    yield g
    stop(g.proc)
    report = os.environ.get("FAREGATE_MATRIX_REPORT")
    if report:
        _write_report(Path(report))


@pytest.fixture(scope="module")
def account(gw: Gateway) -> tuple[str, str]:
    return gw.account(100_000_000)


# -- the three client protocols ---------------------------------------------------------------


class Client:
    def __init__(self, gw: Gateway, key: str) -> None:
        self.gw, self.key = gw, key

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        return httpx.post(self.gw.url + path, json=body, headers=headers, timeout=20)


def _sse(text: str) -> list[Any]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


class OpenAIClient(Client):
    def chat(self, model: str, messages: list[Any], **extra: Any) -> httpx.Response:
        return self.post(
            "/v1/chat/completions",
            {"model": model, "messages": messages, **extra},
            {"authorization": f"Bearer {self.key}"},
        )

    def text(self, model: str) -> str:
        r = self.chat(model, [{"role": "user", "content": "Tell me about the sea"}])
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["message"]["content"])

    def stream(self, model: str) -> str:
        r = self.chat(model, [{"role": "user", "content": "Tell me about the sea"}], stream=True)
        assert r.status_code == 200, r.text
        assert r.text.rstrip().endswith("data: [DONE]")
        return "".join(
            (c["choices"][0]["delta"].get("content") or "") for c in _sse(r.text) if c["choices"]
        )

    def tool(self, model: str) -> tuple[str, dict[str, Any]]:
        r = self.chat(
            model,
            [{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[{"type": "function", "function": WEATHER}],
            tool_choice="auto",
        )
        assert r.status_code == 200, r.text
        call = r.json()["choices"][0]["message"]["tool_calls"][0]["function"]
        return call["name"], json.loads(call["arguments"])

    def image(self, model: str) -> str:
        content = [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ]
        r = self.chat(model, [{"role": "user", "content": content}])
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["message"]["content"])

    def json_out(self, model: str) -> Any:
        r = self.chat(
            model,
            [{"role": "user", "content": "Answer in JSON"}],
            response_format={"type": "json_object"},
        )
        assert r.status_code == 200, r.text
        return json.loads(r.json()["choices"][0]["message"]["content"])

    def reasoning(self, model: str) -> int:
        r = self.chat(
            model,
            [{"role": "user", "content": "Think first"}],
            reasoning_effort="low",
            max_tokens=4000,
        )
        assert r.status_code == 200, r.text
        return int(r.json()["usage"]["completion_tokens_details"]["reasoning_tokens"])

    def usage(self, model: str) -> tuple[int, int, int]:
        r = self.chat(model, [{"role": "user", "content": "Count my tokens"}])
        assert r.status_code == 200, r.text
        u = r.json()["usage"]
        assert u["cost_micro_credits"] == int(r.headers["x-faregate-cost"])
        return u["prompt_tokens"], u["completion_tokens"], u["cost_micro_credits"]

    def error(self) -> None:
        r = self.chat("no-such-model", [{"role": "user", "content": "x"}])
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "model_not_found"


class AnthropicClient(Client):
    def messages(self, model: str, messages: list[Any], **extra: Any) -> httpx.Response:
        body = {"model": model, "max_tokens": 400, "messages": messages, **extra}
        return self.post(
            "/v1/messages", body, {"x-api-key": self.key, "anthropic-version": "2023-06-01"}
        )

    def _text_of(self, r: httpx.Response) -> str:
        assert r.status_code == 200, r.text
        return "".join(b.get("text", "") for b in r.json()["content"] if b["type"] == "text")

    def text(self, model: str) -> str:
        return self._text_of(self.messages(model, [{"role": "user", "content": "The sea?"}]))

    def stream(self, model: str) -> str:
        r = self.messages(model, [{"role": "user", "content": "The sea?"}], stream=True)
        assert r.status_code == 200, r.text
        events = _sse(r.text)
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
        return "".join(
            e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta"
        )

    def tool(self, model: str) -> tuple[str, dict[str, Any]]:
        tool = {
            "name": WEATHER["name"],
            "description": WEATHER["description"],
            "input_schema": WEATHER["parameters"],
        }
        r = self.messages(
            model, [{"role": "user", "content": "What is the weather in Paris?"}], tools=[tool]
        )
        assert r.status_code == 200, r.text
        use = next(b for b in r.json()["content"] if b["type"] == "tool_use")
        return use["name"], use["input"]

    def image(self, model: str) -> str:
        content = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "What is in this picture?"},
        ]
        return self._text_of(self.messages(model, [{"role": "user", "content": content}]))

    def json_out(self, model: str) -> Any:
        schema = {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
        }
        r = self.messages(
            model,
            [{"role": "user", "content": "Answer in JSON"}],
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
        return json.loads(self._text_of(r))

    def reasoning(self, model: str) -> int:
        r = self.messages(
            model,
            [{"role": "user", "content": "Think first"}],
            max_tokens=4000,
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
        assert r.status_code == 200, r.text
        thinking = [b for b in r.json()["content"] if b["type"] == "thinking"]
        details = r.json()["usage"].get("output_tokens_details") or {}
        # Upstreams that hide their reasoning (OpenAI) still report its tokens.
        return len(thinking) + int(details.get("thinking_tokens") or 0)

    def usage(self, model: str) -> tuple[int, int, int]:
        r = self.messages(model, [{"role": "user", "content": "Count my tokens"}])
        assert r.status_code == 200, r.text
        u = r.json()["usage"]
        prompt = (
            u["input_tokens"]
            + (u.get("cache_read_input_tokens") or 0)
            + (u.get("cache_creation_input_tokens") or 0)
        )
        return prompt, u["output_tokens"], int(r.headers["x-faregate-cost"])

    def error(self) -> None:
        r = self.messages("no-such-model", [{"role": "user", "content": "x"}])
        assert r.status_code == 404
        assert r.json()["type"] == "error"
        assert r.json()["error"]["type"] == "not_found_error"


class GeminiClient(Client):
    def generate(
        self, model: str, parts: list[Any], stream: bool = False, **extra: Any
    ) -> httpx.Response:
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = {"contents": [{"role": "user", "parts": parts}], **extra}
        return self.post(f"/v1beta/models/{model}:{verb}", body, {"x-goog-api-key": self.key})

    def _text_of(self, data: Any) -> str:
        parts = data["candidates"][0].get("content", {}).get("parts", [])
        return "".join(p.get("text", "") for p in parts if not p.get("thought"))

    def text(self, model: str) -> str:
        r = self.generate(model, [{"text": "The sea?"}])
        assert r.status_code == 200, r.text
        return self._text_of(r.json())

    def stream(self, model: str) -> str:
        r = self.generate(model, [{"text": "The sea?"}], stream=True)
        assert r.status_code == 200, r.text
        chunks = _sse(r.text)
        assert any(c["candidates"][0].get("finishReason") == "STOP" for c in chunks)
        return "".join(self._text_of(c) for c in chunks if c.get("candidates"))

    def tool(self, model: str) -> tuple[str, dict[str, Any]]:
        r = self.generate(
            model,
            [{"text": "What is the weather in Paris?"}],
            tools=[{"functionDeclarations": [WEATHER]}],
        )
        assert r.status_code == 200, r.text
        call = next(
            p["functionCall"]
            for p in r.json()["candidates"][0]["content"]["parts"]
            if "functionCall" in p
        )
        return call["name"], call["args"]

    def image(self, model: str) -> str:
        r = self.generate(
            model,
            [
                {"inlineData": {"mimeType": "image/png", "data": PNG}},
                {"text": "What is in this picture?"},
            ],
        )
        assert r.status_code == 200, r.text
        return self._text_of(r.json())

    def json_out(self, model: str) -> Any:
        r = self.generate(
            model,
            [{"text": "Answer in JSON"}],
            generationConfig={"responseMimeType": "application/json"},
        )
        assert r.status_code == 200, r.text
        return json.loads(self._text_of(r.json()))

    def reasoning(self, model: str) -> int:
        r = self.generate(
            model,
            [{"text": "Think first"}],
            generationConfig={
                "maxOutputTokens": 4000,
                "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
            },
        )
        assert r.status_code == 200, r.text
        return int(r.json()["usageMetadata"].get("thoughtsTokenCount") or 0)

    def usage(self, model: str) -> tuple[int, int, int]:
        r = self.generate(model, [{"text": "Count my tokens"}])
        assert r.status_code == 200, r.text
        u = r.json()["usageMetadata"]
        completion = u["candidatesTokenCount"] + (u.get("thoughtsTokenCount") or 0)
        return u["promptTokenCount"], completion, int(r.headers["x-faregate-cost"])

    def error(self) -> None:
        r = self.generate("no-such-model", [{"text": "x"}])
        assert r.status_code == 404
        assert r.json()["error"]["status"] == "NOT_FOUND"


class ResponsesClient(Client):
    """The OpenAI Responses API (`POST /v1/responses`)."""

    def create(self, model: str, data: Any, **extra: Any) -> httpx.Response:
        body = {"model": model, "input": data, "store": False, **extra}
        return self.post("/v1/responses", body, {"authorization": f"Bearer {self.key}"})

    def _text_of(self, r: httpx.Response) -> str:
        assert r.status_code == 200, r.text
        return "".join(
            part["text"]
            for item in r.json()["output"]
            if item["type"] == "message"
            for part in item["content"]
            if part["type"] == "output_text"
        )

    def text(self, model: str) -> str:
        return self._text_of(self.create(model, "Tell me about the sea"))

    def stream(self, model: str) -> str:
        r = self.create(model, "Tell me about the sea", stream=True)
        assert r.status_code == 200, r.text
        events = _sse(r.text)
        assert events[0]["type"] == "response.created"
        assert events[-1]["type"] == "response.completed"
        return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")

    def tool(self, model: str) -> tuple[str, dict[str, Any]]:
        r = self.create(
            model, "What is the weather in Paris?", tools=[{"type": "function", **WEATHER}]
        )
        assert r.status_code == 200, r.text
        call = next(i for i in r.json()["output"] if i["type"] == "function_call")
        return call["name"], json.loads(call["arguments"])

    def image(self, model: str) -> str:
        content = [
            {"type": "input_text", "text": "What is in this picture?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
        ]
        return self._text_of(self.create(model, [{"role": "user", "content": content}]))

    def json_out(self, model: str) -> Any:
        r = self.create(model, "Answer in JSON", text={"format": {"type": "json_object"}})
        return json.loads(self._text_of(r))

    def reasoning(self, model: str) -> int:
        r = self.create(model, "Think first", reasoning={"effort": "low"}, max_output_tokens=4000)
        assert r.status_code == 200, r.text
        return int(r.json()["usage"]["output_tokens_details"]["reasoning_tokens"])

    def usage(self, model: str) -> tuple[int, int, int]:
        r = self.create(model, "Count my tokens")
        assert r.status_code == 200, r.text
        u = r.json()["usage"]
        return u["input_tokens"], u["output_tokens"], int(r.headers["x-faregate-cost"])

    def error(self) -> None:
        r = self.create("no-such-model", "x")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "model_not_found"


class CompletionsClient(Client):
    """The legacy OpenAI Completions API (`POST /v1/completions`): text only."""

    NOT_APPLICABLE = ("tools", "images", "json", "reasoning")

    def complete(self, model: str, prompt: str, **extra: Any) -> httpx.Response:
        body = {"model": model, "prompt": prompt, "max_tokens": 400, **extra}
        return self.post("/v1/completions", body, {"authorization": f"Bearer {self.key}"})

    def text(self, model: str) -> str:
        r = self.complete(model, "Tell me about the sea")
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["text"])

    def stream(self, model: str) -> str:
        r = self.complete(model, "Tell me about the sea", stream=True)
        assert r.status_code == 200, r.text
        assert r.text.rstrip().endswith("data: [DONE]")
        return "".join(c["choices"][0]["text"] for c in _sse(r.text) if c["choices"])

    def usage(self, model: str) -> tuple[int, int, int]:
        r = self.complete(model, "Count my tokens")
        assert r.status_code == 200, r.text
        u = r.json()["usage"]
        return u["prompt_tokens"], u["completion_tokens"], int(r.headers["x-faregate-cost"])

    def error(self) -> None:
        r = self.complete("no-such-model", "x")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "model_not_found"


CLIENT_TYPES: dict[str, Callable[[Gateway, str], Any]] = {
    "openai": OpenAIClient,
    "anthropic": AnthropicClient,
    "gemini": GeminiClient,
    "responses": ResponsesClient,
    "completions": CompletionsClient,
}


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("upstream", list(UPSTREAMS))
@pytest.mark.parametrize("client_protocol", CLIENTS)
def test_matrix(
    gw: Gateway, account: tuple[str, str], client_protocol: str, upstream: str, feature: str
) -> None:
    RESULTS[(client_protocol, upstream, feature)] = "fail"
    client = CLIENT_TYPES[client_protocol](gw, account[1])
    if feature in getattr(client, "NOT_APPLICABLE", ()):
        RESULTS[(client_protocol, upstream, feature)] = "n/a"
        pytest.skip(f"{client_protocol} has no {feature}")
    model = UPSTREAMS[upstream]
    if feature == "text":
        assert client.text(model)
    elif feature == "streaming":
        assert client.stream(model) == client.text(model)  # the simulator is deterministic
    elif feature == "tools":
        name, args = client.tool(model)
        assert name == "get_weather" and "city" in args
    elif feature == "images":
        assert client.image(model)
    elif feature == "json":
        assert isinstance(client.json_out(model), dict)
    elif feature == "reasoning":
        assert client.reasoning(model) > 0
    elif feature == "usage-and-cost":
        prompt, completion, cost = client.usage(model)
        settle = next(r for r in gw.ledger(account[0]) if r["kind"] == "settle")
        assert (settle["prompt_tokens"], settle["completion_tokens"]) == (prompt, completion)
        assert settle["cost"] == cost > 0
        ledger_consistent(gw, account[0])
    elif feature == "errors":
        client.error()
    RESULTS[(client_protocol, upstream, feature)] = "pass"


def _write_report(path: Path) -> None:
    lines = [
        "# Protocol matrix",
        "",
        "Every client protocol against every upstream protocol, feature by feature, end to end",
        "through a running gateway and the provider simulator (`tests/integration/test_matrix.py`;",
        "`FAREGATE_MATRIX_REPORT=docs/protocol-matrix.md pytest tests/integration/test_matrix.py`",
        "writes this page).",
        "",
        "Clients: `openai` is chat completions, `responses` the Responses API",
        "(`POST /v1/responses`), `completions` the legacy `POST /v1/completions` (text only: `n/a`",
        "where the API has no such feature; served as chat here, passed through to a provider with",
        "`completions = true` in `tests/integration/test_responses_sdk.py`). The",
        "`openai-responses` upstream is a provider speaking the Responses API.",
        "",
        "| client → upstream | " + " | ".join(FEATURES) + " |",
        "| --- |" + " --- |" * len(FEATURES),
    ]
    for c in CLIENTS:
        for u in UPSTREAMS:
            cells = [RESULTS.get((c, u, f), "not run") for f in FEATURES]
            lines.append(f"| {c} → {u} | " + " | ".join(cells) + " |")
    # the sections after the table (other kinds' matrices) are kept as written
    kept = path.read_text().partition("\n## ")[2] if path.is_file() else ""
    path.write_text("\n".join(lines) + "\n" + (f"\n## {kept}" if kept else ""))
