"""The simulator's Gemini API, driven by the official google-genai SDK and by raw aiohttp."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from google import genai
from google.genai import errors, types

from faregate.sim.gemini_request import prompt_tokens
from faregate.tokens import IMAGE_TOKENS, MESSAGE_OVERHEAD, REPLY_PRIMING, count_text

# The SDK's async client subclasses aiohttp.ClientSession, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

MODEL = "gemini-2.5-pro"
KEY = {"x-goog-api-key": "sim-key"}
HELLO: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Weather in a city",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={"city": types.Schema(type=types.Type.STRING)},
                required=["city"],
            ),
        )
    ]
)


@pytest.fixture
async def sdk(sim_url: str) -> AsyncIterator[genai.client.AsyncClient]:
    options = types.HttpOptions(
        base_url=sim_url,
        api_version="v1beta",  # the simulator stands in for the upstream, which we call on v1beta
        retry_options=types.HttpRetryOptions(attempts=1),
        timeout=5000,
    )
    client = genai.Client(api_key="sim-key", http_options=options)
    try:
        yield client.aio
    finally:
        await client.aio.aclose()
        client.close()


def fault(script: str) -> types.HttpOptions:
    return types.HttpOptions(headers={"x-sim-fault": script})


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: Any,
    method: str = "generateContent",
    *,
    model: str = MODEL,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> tuple[int, dict[str, str], Any]:
    target = f"{url}/v1beta/models/{model}:{method}{query}"
    async with http.post(target, json=body, headers=KEY if headers is None else headers) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def test_text_reply_with_exact_usage(sdk: genai.client.AsyncClient) -> None:
    reply = await sdk.models.generate_content(model=MODEL, contents="Hello there")
    assert reply.text and reply.text.startswith('You said: "Hello there".')
    usage = reply.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == REPLY_PRIMING + MESSAGE_OVERHEAD + 2
    assert usage.candidates_token_count == count_text(reply.text)
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert usage.thoughts_token_count is None and usage.cached_content_token_count is None
    assert reply.model_version == MODEL and reply.response_id
    assert reply.candidates and reply.candidates[0].finish_reason == types.FinishReason.STOP
    again = await sdk.models.generate_content(model=MODEL, contents="Hello there")
    assert again.text == reply.text  # deterministic


async def test_count_tokens_matches_the_prompt_count(sdk: genai.client.AsyncClient) -> None:
    contents = [
        types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")]),
        types.Content(role="model", parts=[types.Part(text="Sunny.")]),
        types.Content(role="user", parts=[types.Part(text="And tomorrow?")]),
    ]
    counted = await sdk.models.count_tokens(model=MODEL, contents=contents)
    reply = await sdk.models.generate_content(model=MODEL, contents=contents)
    assert reply.usage_metadata is not None
    assert counted.total_tokens == reply.usage_metadata.prompt_token_count
    texts = ["What is the weather in Paris?", "Sunny.", "And tomorrow?"]
    assert counted.total_tokens == REPLY_PRIMING + sum(
        MESSAGE_OVERHEAD + count_text(t) for t in texts
    )


def test_prompt_rule_counts_system_media_calls_and_tools() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "see"}, {"inlineData": {"mimeType": "image/png"}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": 1}}}]},
    ]
    tools = [{"functionDeclarations": [{"name": "f"}]}]
    expected = (
        REPLY_PRIMING
        + 4 * MESSAGE_OVERHEAD
        + count_text("be brief")
        + count_text("see")
        + IMAGE_TOKENS
        + count_text("f") * 2
        + count_text('{"a":1}')
        + count_text('{"ok":1}')
        + count_text(json.dumps(tools, separators=(",", ":")))
    )
    system = {"parts": [{"text": "be brief"}]}
    assert prompt_tokens(contents, system, tools) == expected


async def test_stream_matches_the_whole_reply(sdk: genai.client.AsyncClient) -> None:
    whole = await sdk.models.generate_content(model=MODEL, contents="Tell me about the sea")
    chunks = [
        c
        async for c in await sdk.models.generate_content_stream(
            model=MODEL, contents="Tell me about the sea"
        )
    ]
    assert len(chunks) > 5
    assert "".join(c.text or "" for c in chunks) == whole.text
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata == whole.usage_metadata
    assert len({c.response_id for c in chunks}) == 1


async def test_sse_and_json_array_framing(sim_url: str, http: aiohttp.ClientSession) -> None:
    target = f"{sim_url}/v1beta/models/{MODEL}:streamGenerateContent"
    async with http.post(target + "?alt=sse", json=HELLO, headers=KEY) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = await resp.read()
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b"" and all(e.startswith(b"data: ") for e in events[:-1])
    parsed = [orjson.loads(e[6:]) for e in events[:-1]]
    assert "finishReason" not in parsed[0]["candidates"][0]
    assert parsed[-1]["candidates"][0]["finishReason"] == "STOP"
    assert parsed[0]["usageMetadata"] == {"promptTokenCount": 9, "totalTokenCount": 9}
    assert parsed[-1]["usageMetadata"]["candidatesTokenCount"] > 0
    async with http.post(target, json=HELLO, headers=KEY) as resp:
        assert resp.headers["content-type"].startswith("application/json")
        array = orjson.loads(await resp.read())
    assert isinstance(array, list) and array[-1] == parsed[-1] | {
        "responseId": array[-1]["responseId"]
    }


async def test_thinking_budget_and_levels(sdk: genai.client.AsyncClient) -> None:
    shown = await sdk.models.generate_content(
        model=MODEL,
        contents="Why is the sky blue?",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_budget=10, include_thoughts=True)
        ),
    )
    assert shown.candidates and shown.candidates[0].content
    parts = shown.candidates[0].content.parts or []
    assert parts[0].thought is True and count_text(parts[0].text or "") == 10
    assert shown.usage_metadata and shown.usage_metadata.thoughts_token_count == 10
    usage = shown.usage_metadata
    assert usage.total_token_count == (
        (usage.prompt_token_count or 0) + (usage.candidates_token_count or 0) + 10
    )
    hidden = await sdk.models.generate_content(
        model=MODEL,
        contents="Why is the sky blue?",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)
        ),
    )
    assert hidden.candidates and hidden.candidates[0].content
    assert all(not p.thought for p in hidden.candidates[0].content.parts or [])
    assert hidden.usage_metadata and hidden.usage_metadata.thoughts_token_count == 8


async def test_output_cap_counts_thoughts(sdk: genai.client.AsyncClient) -> None:
    reply = await sdk.models.generate_content(
        model=MODEL,
        contents="Write a long story",
        config=types.GenerateContentConfig(
            max_output_tokens=12, thinking_config=types.ThinkingConfig(thinking_budget=8)
        ),
    )
    assert reply.candidates and reply.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert reply.usage_metadata
    assert (
        reply.usage_metadata.thoughts_token_count,
        reply.usage_metadata.candidates_token_count,
    ) == (8, 4)


async def test_function_call_with_thought_signature(sdk: genai.client.AsyncClient) -> None:
    config = types.GenerateContentConfig(
        tools=[WEATHER],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    reply = await sdk.models.generate_content(
        model="gemini-3-pro-preview", contents="What is the weather in Paris?", config=config
    )
    assert reply.function_calls and reply.function_calls[0].name == "get_weather"
    assert set((reply.function_calls[0].args or {}).keys()) == {"city"}
    assert reply.candidates and reply.candidates[0].content
    call_part = reply.candidates[0].content.parts[0]  # type: ignore[index]
    assert call_part.thought_signature and call_part.thought_signature.startswith(b"sim-sig:")
    history = [
        types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")]),
        reply.candidates[0].content,
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response={"t": 18})],
        ),
    ]
    final = await sdk.models.generate_content(
        model="gemini-3-pro-preview", contents=history, config=config
    )
    assert final.text and not final.function_calls  # a tool result turn is answered in text
    unsigned = types.Content(
        role="model",
        parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args={}))],
    )
    with pytest.raises(errors.ClientError) as err:
        await sdk.models.generate_content(
            model="gemini-3-pro-preview", contents=[history[0], unsigned, history[2]], config=config
        )
    assert err.value.code == 400 and "thought_signature" in (err.value.message or "")


async def test_bogus_signature_is_refused(sim_url: str, http: aiohttp.ClientSession) -> None:
    call = {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "bm90LW91cnM="}
    body = {"contents": [HELLO["contents"][0], {"role": "model", "parts": [call]}]}
    status, _, data = await post(http, sim_url, body)
    assert status == 400 and data["error"]["message"] == "Thought signature is not valid."


@pytest.mark.parametrize(
    ("mode", "names", "called"),
    [("NONE", None, []), ("ANY", ["get_time"], ["get_time"]), ("AUTO", None, ["get_weather"])],
)
async def test_function_calling_modes(
    sdk: genai.client.AsyncClient, mode: str, names: list[str] | None, called: list[str]
) -> None:
    tools = [
        types.Tool(
            function_declarations=[
                types.FunctionDeclaration(name="get_weather"),
                types.FunctionDeclaration(name="get_time"),
            ]
        )
    ]
    config = types.GenerateContentConfig(
        tools=tools,
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode(mode), allowed_function_names=names
            )
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    reply = await sdk.models.generate_content(
        model=MODEL, contents="What's the weather like?", config=config
    )
    assert [c.name for c in reply.function_calls or []] == called


async def test_json_output(sdk: genai.client.AsyncClient) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3}},
        "required": ["city", "days"],
    }
    shaped = await sdk.models.generate_content(
        model=MODEL,
        contents="Plan a trip",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=schema
        ),
    )
    data = json.loads(shaped.text or "")
    assert set(data) == {"city", "days"} and data["days"] == 3
    openapi = await sdk.models.generate_content(
        model=MODEL,
        contents="Plan a trip",
        config=types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=types.Schema(
                type=types.Type.OBJECT, properties={"ok": types.Schema(type=types.Type.BOOLEAN)}
            ),
        ),
    )
    assert json.loads(openapi.text or "") == {"ok": True}
    free = await sdk.models.generate_content(
        model=MODEL,
        contents="Plan a trip",
        config=types.GenerateContentConfig(response_mime_type="application/json"),
    )
    assert set(json.loads(free.text or "")) == {"reply"}


async def test_image_modality_and_candidates(sdk: genai.client.AsyncClient) -> None:
    reply = await sdk.models.generate_content(
        model=MODEL,
        contents="Draw a dot",
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"], candidate_count=2
        ),
    )
    assert reply.candidates and len(reply.candidates) == 2
    assert [c.index for c in reply.candidates] == [0, 1]
    parts = reply.candidates[0].content.parts  # type: ignore[union-attr]
    assert parts and parts[-1].inline_data and parts[-1].inline_data.mime_type == "image/png"
    assert parts[-1].inline_data.data and parts[-1].inline_data.data.startswith(b"\x89PNG")
    usage = reply.usage_metadata
    assert usage and usage.candidates_token_count == sum(
        count_text(c.content.parts[0].text or "") + IMAGE_TOKENS  # type: ignore[union-attr,index]
        for c in reply.candidates
    )


async def test_stop_sequences(sdk: genai.client.AsyncClient) -> None:
    reply = await sdk.models.generate_content(
        model=MODEL,
        contents="Hello there",
        config=types.GenerateContentConfig(stop_sequences=["there"]),
    )
    assert reply.text == 'You said: "Hello '


async def test_embeddings(sdk: genai.client.AsyncClient) -> None:
    batch = await sdk.models.embed_content(model="gemini-embedding-001", contents=["a b", "c"])
    assert batch.embeddings and len(batch.embeddings) == 2
    values = batch.embeddings[0].values or []
    assert len(values) == 8 and math.isclose(sum(v * v for v in values), 1.0, rel_tol=1e-4)
    assert batch.usage_metadata and batch.usage_metadata.prompt_token_count == 3
    again = await sdk.models.embed_content(model="gemini-embedding-001", contents="a b")
    assert again.embeddings and again.embeddings[0].values == values
    small = await sdk.models.embed_content(
        model="gemini-embedding-001",
        contents="a b",
        config=types.EmbedContentConfig(output_dimensionality=4),
    )
    assert small.embeddings and len(small.embeddings[0].values or []) == 4


async def test_single_embed_content_and_mismatched_model(
    sim_url: str, http: aiohttp.ClientSession
) -> None:
    body = {"content": {"parts": [{"text": "hi"}]}}
    status, _, data = await post(http, sim_url, body, "embedContent", model="gemini-embedding-001")
    assert status == 200 and len(data["embedding"]["values"]) == 8
    batch = {"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}
    status, _, data = await post(
        http, sim_url, batch, "batchEmbedContents", model="gemini-embedding-001"
    )
    assert status == 400 and "does not match" in data["error"]["message"]


async def test_models_list_and_get(sdk: genai.client.AsyncClient) -> None:
    names = [m.name async for m in await sdk.models.list()]
    assert "models/gemini-2.5-pro" in names and "models/gemini-embedding-001" in names
    model = await sdk.models.get(model="gemini-2.5-flash")
    assert model.name == "models/gemini-2.5-flash"
    assert model.supported_actions and "generateContent" in model.supported_actions


async def test_keys(sim_url: str, http: aiohttp.ClientSession) -> None:
    status, _, data = await post(http, sim_url, HELLO, headers={})
    assert status == 403 and data["error"]["status"] == "PERMISSION_DENIED"
    status, _, data = await post(
        http, sim_url, HELLO, headers={"x-goog-api-key": "sim-gemini-invalid"}
    )
    assert status == 400 and data["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, _, data = await post(http, sim_url, HELLO, headers={}, query="?key=by-query")
    assert status == 200 and data["candidates"]
    async with http.get(f"{sim_url}/v1beta/models") as resp:
        assert resp.status == 403


async def test_scripted_invalid_key_and_refused_model(
    sim_url: str, http: aiohttp.ClientSession
) -> None:
    """The two 4xx a gateway must tell apart: the key itself, or this request's model."""
    body = {**HELLO, "labels": {"sim_fault": "error_type=invalid_api_key"}}
    status, _, data = await post(http, sim_url, body)
    assert status == 400 and data["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    body = {**HELLO, "labels": {"sim_fault": "error_type=model_not_allowed"}}
    status, _, data = await post(http, sim_url, body)
    assert status == 403 and data["error"]["status"] == "PERMISSION_DENIED"
    assert "details" not in data["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": []}, "contents is not specified"),
        ({**HELLO, "temperature": 1}, 'Unknown name "temperature"'),
        ({**HELLO, "generationConfig": {"maxTokens": 1}}, 'Unknown name "maxTokens"'),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        (
            {
                **HELLO,
                "generationConfig": {
                    "thinkingConfig": {"thinkingBudget": 1, "thinkingLevel": "LOW"}
                },
            },
            "only set one",
        ),
        ({**HELLO, "generationConfig": {"candidateCount": 9}}, "candidate_count"),
        ({**HELLO, "generationConfig": {"responseMimeType": "text/csv"}}, "allowed mimetypes"),
    ],
)
async def test_invalid_requests(
    sim_url: str, http: aiohttp.ClientSession, body: dict[str, Any], message: str
) -> None:
    status, _, data = await post(http, sim_url, body)
    assert status == 400
    assert data["error"]["status"] == "INVALID_ARGUMENT" and message in data["error"]["message"]


async def test_snake_case_fields_are_accepted(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {**HELLO, "generation_config": {"max_output_tokens": 3}}
    status, _, data = await post(http, sim_url, body)
    assert status == 200 and data["candidates"][0]["finishReason"] == "MAX_TOKENS"


async def test_rate_limit_fault_in_google_shape(sdk: genai.client.AsyncClient) -> None:
    with pytest.raises(errors.ClientError) as err:
        await sdk.models.generate_content(
            model=MODEL,
            contents="hi",
            config=types.GenerateContentConfig(http_options=fault("status=429;retry_after=3")),
        )
    assert err.value.code == 429 and err.value.status == "RESOURCE_EXHAUSTED"
    details = err.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"} in details
    assert "PerMinute" in details[0]["violations"][0]["quotaId"]


async def test_fault_headers_and_labels(sim_url: str, http: aiohttp.ClientSession) -> None:
    status, headers, data = await post(
        http, sim_url, HELLO, headers={**KEY, "x-sim-fault": "status=429;retry_after=2"}
    )
    assert status == 429 and headers["Retry-After"] == "2"
    status, _, data = await post(http, sim_url, {**HELLO, "labels": {"sim_fault": "status=503"}})
    assert (status, data["error"]["status"]) == (503, "UNAVAILABLE")
    status, _, data = await post(http, sim_url, {**HELLO, "labels": {"sim_fault": "status=500"}})
    assert (status, data["error"]["status"]) == (500, "INTERNAL")
    status, _, data = await post(
        http, sim_url, {**HELLO, "labels": {"sim_fault": "error_type=insufficient_quota"}}
    )
    assert status == 429 and "PerDay" in data["error"]["details"][0]["violations"][0]["quotaId"]
    status, _, data = await post(http, sim_url, {**HELLO, "labels": {"sim_fault": "bogus"}})
    assert status == 400 and "bogus" in data["error"]["message"]


async def test_fail_times_then_recovers_and_counts(
    sim_url: str, http: aiohttp.ClientSession
) -> None:
    labels = {"sim_fault": "status=503;fail_times=1;key=gem-recover"}
    first, _, _ = await post(http, sim_url, {**HELLO, "labels": labels})
    second, _, _ = await post(http, sim_url, {**HELLO, "labels": labels})
    assert (first, second) == (503, 200)
    async with http.get(f"{sim_url}/sim/stats") as resp:
        stats = await resp.json()
    assert stats["by_route"]["/v1beta/models:generateContent"] == 2
    assert stats["by_model"][MODEL] == 2


async def test_shaping_directives(sim_url: str, http: aiohttp.ClientSession) -> None:
    script = "tokens=7;cached_tokens=4;reasoning_tokens=5"
    _, _, data = await post(http, sim_url, {**HELLO, "labels": {"sim_fault": script}})
    assert count_text(data["candidates"][0]["content"]["parts"][0]["text"]) == 7
    usage = data["usageMetadata"]
    assert (usage["candidatesTokenCount"], usage["cachedContentTokenCount"]) == (7, 4)
    assert usage["thoughtsTokenCount"] == 5
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 12


async def test_no_usage_without_a_stream(sim_url: str, http: aiohttp.ClientSession) -> None:
    target = f"{sim_url}/v1beta/models/{MODEL}:generateContent"
    headers = {**KEY, "x-sim-fault": "no_usage"}
    async with http.post(target, json=HELLO, headers=headers) as resp:
        reply = await resp.json()
    assert resp.status == 200 and reply["candidates"][0]["content"]["parts"]
    assert "usageMetadata" not in reply


async def test_stream_no_usage(sim_url: str, http: aiohttp.ClientSession) -> None:
    target = f"{sim_url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    headers = {**KEY, "x-sim-fault": "no_usage"}
    async with http.post(target, json=HELLO, headers=headers) as resp:
        raw = await resp.read()
    assert b"usageMetadata" not in raw and b'"finishReason":"STOP"' in raw


@pytest.mark.parametrize("directive", ["cut_after=3", "stall_after=3"])
async def test_stream_breaks_after_content_chunks(
    sim_url: str, http: aiohttp.ClientSession, directive: str
) -> None:
    target = f"{sim_url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    received: list[bytes] = []

    async def read() -> None:
        headers = {**KEY, "x-sim-fault": directive}
        async with http.post(target, json=HELLO, headers=headers) as resp:
            async with asyncio.timeout(1.0):
                async for data in resp.content.iter_any():
                    received.append(data)

    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, TimeoutError)):
        await read()
    raw = b"".join(received)
    events = [e for e in raw.split(b"\r\n\r\n") if e]
    assert len(events) == 4  # the first chunk, then three content chunks
    assert b"finishReason" not in raw


async def test_non_streaming_cut_sends_half_a_body(
    sim_url: str, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(http, sim_url, HELLO, headers={**KEY, "x-sim-fault": "cut_after=1"})


async def test_thought_signature_is_base64_of_the_sim_prefix(
    sim_url: str, http: aiohttp.ClientSession
) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "weather in Oslo?"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
    }
    _, _, data = await post(http, sim_url, body)
    part = data["candidates"][0]["content"]["parts"][0]
    assert base64.b64decode(part["thoughtSignature"]).startswith(b"sim-sig:")
    assert part["functionCall"] == {"name": "get_weather", "args": {}}


async def test_safety_settings_are_validated(sim_url: str, http: aiohttp.ClientSession) -> None:
    good = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    status, _, _ = await post(http, sim_url, {**HELLO, "safetySettings": good})
    assert status == 200
    bad = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_SOME"}]
    status, _, data = await post(http, sim_url, {**HELLO, "safety_settings": bad})
    assert status == 400 and "safety_settings[0].threshold" in data["error"]["message"]


async def test_streamed_candidates_interleave(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {**HELLO, "generationConfig": {"candidateCount": 2}}
    target = f"{sim_url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    async with http.post(target, json=body, headers=KEY) as resp:
        raw = await resp.read()
    chunks = [orjson.loads(e[6:]) for e in raw.split(b"\r\n\r\n") if e]
    assert [c["candidates"][0]["index"] for c in chunks[:2]] == [0, 1]
    assert [c["finishReason"] for c in chunks[-1]["candidates"]] == ["STOP", "STOP"]
