"""The official google-genai SDK (unmodified but for base URL and key) against a running gateway,
on a Gemini upstream (`gemini-sim`) and an OpenAI one (`sim-small`); and the OpenAI SDK on the
Gemini upstream. Costs are checked against the ledger at the harness prices."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types
from harness import PRICES, Gateway, ledger_consistent, start_gateway, stop

# The SDK's async client subclasses aiohttp.ClientSession, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

MODELS = ["gemini-sim", "sim-small"]
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
NO_AUTO = types.AutomaticFunctionCallingConfig(disable=True)
OPENAI_TOOLS: Any = [
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

_OPEN: list[genai.Client | openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def funded(gateway: Gateway) -> tuple[str, str]:
    return gateway.account(10_000_000)


def _client(gw: Gateway, key: str) -> genai.Client:
    # No retries: HttpRetryOptions owns retries once given, and one attempt means none.
    options = types.HttpOptions(
        base_url=gw.url, retry_options=types.HttpRetryOptions(attempts=1), timeout=30_000
    )
    client = genai.Client(api_key=key, http_options=options)
    _OPEN.append(client)
    return client


def _openai(gw: Gateway, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    _OPEN.append(client)
    return client


def _cost(usage: types.GenerateContentResponseUsageMetadata) -> int:
    prompt = usage.prompt_token_count or 0
    cached = usage.cached_content_token_count or 0
    output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    total = (prompt - cached) * PRICES["input"] + cached * PRICES["cached_input"]
    return -(-(total + output * PRICES["output"]) // 10**6)


def _settled(gw: Gateway, account: str) -> list[dict[str, Any]]:
    return [r for r in gw.ledger(account) if r["kind"] == "settle"]


@pytest.mark.parametrize("model", MODELS)
def test_generate_content_bills_its_usage(
    gateway: Gateway, funded: tuple[str, str], model: str
) -> None:
    account, key = funded
    reply = _client(gateway, key).models.generate_content(
        model=model, contents="Tell me about the sea"
    )
    assert reply.text and reply.text.startswith('You said: "Tell me about the sea"')
    assert reply.candidates and reply.candidates[0].finish_reason == types.FinishReason.STOP
    usage = reply.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert reply.response_id and reply.model_version
    headers = reply.sdk_http_response.headers if reply.sdk_http_response else {}
    assert headers is not None
    assert headers["x-faregate-cost"] == str(_cost(usage))
    assert headers["x-faregate-model"] == model
    settle = _settled(gateway, account)
    assert [r["cost"] for r in settle] == [_cost(usage)]
    assert settle[0]["prompt_tokens"] == usage.prompt_token_count
    assert settle[0]["completion_tokens"] == usage.candidates_token_count
    assert settle[0]["estimated"] in (False, 0)
    ledger_consistent(gateway, account)


@pytest.mark.parametrize("model", MODELS)
def test_stream_bills_the_final_usage(
    gateway: Gateway, funded: tuple[str, str], model: str
) -> None:
    account, key = funded
    chunks = list(
        _client(gateway, key).models.generate_content_stream(
            model=model, contents="Tell me about the sea"
        )
    )
    assert len(chunks) > 5
    text = "".join(c.text or "" for c in chunks)
    assert text.startswith('You said: "Tell me about the sea"')
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    usage = last.usage_metadata
    assert usage is not None and usage.candidates_token_count
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert [r["cost"] for r in _settled(gateway, account)] == [_cost(usage)]
    assert _settled(gateway, account)[0]["estimated"] in (False, 0)


@pytest.mark.parametrize("model", MODELS)
async def test_async_client(gateway: Gateway, funded: tuple[str, str], model: str) -> None:
    client = _client(gateway, funded[1]).aio
    try:
        reply = await client.models.generate_content(model=model, contents="Hi")
        assert reply.text
        stream = await client.models.generate_content_stream(model=model, contents="Hi")
        parts = [c.text or "" async for c in stream]
        assert "".join(parts) == reply.text
    finally:
        await client.aclose()


@pytest.mark.parametrize("model", MODELS)
def test_function_calling(gateway: Gateway, funded: tuple[str, str], model: str) -> None:
    client = _client(gateway, funded[1])
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AUTO)
    question = types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])
    reply = client.models.generate_content(model=model, contents=[question], config=config)
    calls = reply.function_calls
    assert calls and calls[0].name == "get_weather" and "city" in (calls[0].args or {})
    assert reply.candidates and reply.candidates[0].content
    answer = types.Content(
        role="user",
        parts=[types.Part.from_function_response(name="get_weather", response={"temp_c": 18})],
    )
    final = client.models.generate_content(
        model=model, contents=[question, reply.candidates[0].content, answer], config=config
    )
    assert final.text and not final.function_calls
    streamed = list(
        client.models.generate_content_stream(model=model, contents=[question], config=config)
    )
    names = [c.name for chunk in streamed for c in chunk.function_calls or []]
    assert names == ["get_weather"]


def test_thought_signatures_round_trip(gateway: Gateway, funded: tuple[str, str]) -> None:
    client = _client(gateway, funded[1])
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AUTO)
    question = types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])
    reply = client.models.generate_content(model="gemini-sim", contents=[question], config=config)
    assert reply.candidates and reply.candidates[0].content
    turn = reply.candidates[0].content
    part = (turn.parts or [])[0]
    assert part.thought_signature and part.thought_signature.startswith(b"sim-sig:")
    answer = types.Content(
        role="user",
        parts=[types.Part.from_function_response(name="get_weather", response={"temp_c": 18})],
    )
    # The simulator refuses a signature it did not make, so the signature is really forwarded.
    forged = turn.model_copy(deep=True)
    (forged.parts or [])[0].thought_signature = b"forged"
    with pytest.raises(errors.ClientError) as err:
        client.models.generate_content(
            model="gemini-sim", contents=[question, forged, answer], config=config
        )
    assert err.value.code == 400 and "signature" in (err.value.message or "")


@pytest.mark.parametrize(("model", "thoughts"), [("gemini-sim", 16), ("sim-small", 8)])
def test_thinking_config(
    gateway: Gateway, funded: tuple[str, str], model: str, thoughts: int
) -> None:
    account, key = funded
    thinking = (
        types.ThinkingConfig(thinking_budget=16, include_thoughts=True)
        if model == "gemini-sim"
        else types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW, include_thoughts=True)
    )
    reply = _client(gateway, key).models.generate_content(
        model=model,
        contents="Why is the sky blue?",
        config=types.GenerateContentConfig(thinking_config=thinking),
    )
    usage = reply.usage_metadata
    assert usage is not None and usage.thoughts_token_count == thoughts
    settle = _settled(gateway, account)[0]
    assert settle["reasoning_tokens"] == thoughts
    assert settle["completion_tokens"] == (usage.candidates_token_count or 0) + thoughts
    assert settle["cost"] == _cost(usage)
    if model == "gemini-sim":
        parts = reply.candidates[0].content.parts  # type: ignore[index,union-attr]
        assert parts and parts[0].thought is True and parts[0].text


def test_models_list_and_get(gateway: Gateway, funded: tuple[str, str]) -> None:
    client = _client(gateway, funded[1])
    models = list(client.models.list())
    names = {m.name for m in models}
    assert {"models/gemini-sim", "models/sim-small"} <= names
    sim = next(m for m in models if m.name == "models/gemini-sim")
    assert sim.supported_actions and "generateContent" in sim.supported_actions
    assert sim.output_token_limit == 1000
    assert client.models.get(model="sim-small").name == "models/sim-small"
    with pytest.raises(errors.ClientError) as err:
        client.models.get(model="nope")
    assert err.value.code == 404 and err.value.status == "NOT_FOUND"
    _, limited = gateway.account(1_000_000, models=["gemini-sim"])
    assert [m.name for m in _client(gateway, limited).models.list()] == ["models/gemini-sim"]
    with pytest.raises(errors.ClientError) as denied:
        _client(gateway, limited).models.generate_content(model="sim-small", contents="hi")
    assert denied.value.code == 403 and denied.value.status == "PERMISSION_DENIED"


def test_openai_clients_keep_the_openai_shapes_on_shared_paths(
    gateway: Gateway, funded: tuple[str, str]
) -> None:
    client = _openai(gateway, funded[1])
    assert "gemini-sim" in {m.id for m in client.models.list()}
    assert client.models.retrieve("gemini-sim").id == "gemini-sim"
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("nope")
    assert err.value.code == "model_not_found"


@pytest.mark.parametrize("model", MODELS)
def test_error_codes(gateway: Gateway, funded: tuple[str, str], model: str) -> None:
    with pytest.raises(errors.ClientError) as bad_key:
        _client(gateway, "fg-wrong").models.generate_content(model=model, contents="hi")
    assert bad_key.value.code == 401 and bad_key.value.status == "UNAUTHENTICATED"
    _, poor = gateway.account(1)
    with pytest.raises(errors.ClientError) as broke:
        _client(gateway, poor).models.generate_content(model=model, contents="hi")
    assert broke.value.code == 402
    client = _client(gateway, funded[1])
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model="no-such-model", contents="hi")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    with pytest.raises(errors.ClientError) as invalid:
        client.models.generate_content(
            model=model,
            contents="hi",
            config=types.GenerateContentConfig(
                tools=[types.Tool(google_search=types.GoogleSearch())]
            ),
        )
    assert invalid.value.code == 400 and invalid.value.status == "INVALID_ARGUMENT"
    assert "googleSearch" in (invalid.value.message or "")
    ledger_consistent(gateway, funded[0])


def _gateway_log(gw: Gateway) -> str:
    return (gw.home.parent / "gateway.log").read_text(errors="replace")


def test_key_in_the_query_and_never_in_the_log(gateway: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    url = f"{gateway.url}/v1beta/models/gemini-sim:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    ok = httpx.post(url, params={"key": key}, json=body, timeout=30)
    assert ok.status_code == 200 and ok.json()["candidates"]
    bad = httpx.post(url, params={"key": key}, json={"contents": "x"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    streamed = httpx.post(
        f"{gateway.url}/api/v1beta/models/sim-small:streamGenerateContent",
        params={"key": key},
        json=body,
        timeout=30,
    )
    array = streamed.json()  # without alt=sse: one JSON array
    assert isinstance(array, list) and array[-1]["usageMetadata"]["totalTokenCount"] > 0
    listing = httpx.get(f"{gateway.url}/v1/models", params={"key": key}, timeout=30).json()
    assert "models" in listing
    assert key not in _gateway_log(gateway)
    assert key[-12:] not in _gateway_log(gateway)


def test_sse_framing_and_count_tokens(gateway: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    body = {"contents": [{"role": "user", "parts": [{"text": "Tell me about the sea"}]}]}
    headers = {"x-goog-api-key": key}
    url = f"{gateway.url}/v1beta/models/gemini-sim:streamGenerateContent"
    with httpx.stream("POST", url, params={"alt": "sse"}, json=body, headers=headers) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read()
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b"" and all(e.startswith(b"data: ") for e in events[:-1])
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(c["responseId"] == chunks[0]["responseId"] for c in chunks)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    meta = chunks[-1]["usageMetadata"]
    assert meta["totalTokenCount"] == meta["promptTokenCount"] + meta["candidatesTokenCount"]
    counted = _client(gateway, key).models.count_tokens(
        model="gemini-sim", contents="Tell me about the sea"
    )
    assert counted.total_tokens == meta["promptTokenCount"]


def test_native_embeddings_on_an_openai_upstream(gateway: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    client = _client(gateway, key)
    single = client.models.embed_content(model="embed-sim", contents="hello world")
    assert single.embeddings and len(single.embeddings) == 1 and single.embeddings[0].values
    batch = client.models.embed_content(model="embed-sim", contents=["a", "b c"])
    assert batch.embeddings and len(batch.embeddings) == 2
    assert batch.usage_metadata and batch.usage_metadata.prompt_token_count
    assert len(_settled(gateway, account)) == 2
    with pytest.raises(errors.ClientError) as err:
        client.models.embed_content(model="gemini-sim", contents="x")
    assert err.value.code == 400


def test_openai_sdk_on_a_gemini_upstream(gateway: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    client = _openai(gateway, key)
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-sim",
        messages=[{"role": "user", "content": "Tell me about the sea"}],
        max_tokens=50,
    )
    reply = raw.parse()
    assert reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage is not None
    expected = -(-(usage.prompt_tokens * 1_000_000 + usage.completion_tokens * 2_000_000) // 10**6)
    assert raw.headers["x-faregate-cost"] == str(expected)
    assert (usage.model_extra or {})["cost_micro_credits"] == expected
    settle = _settled(gateway, account)
    assert [r["cost"] for r in settle] == [expected]
    assert settle[0]["prompt_tokens"] == usage.prompt_tokens
    capped = client.chat.completions.create(
        model="gemini-sim", messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage and capped.usage.completion_tokens == 3
    ledger_consistent(gateway, account)


def test_openai_sdk_stream_on_a_gemini_upstream(gateway: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    chunks = list(
        _openai(gateway, key).chat.completions.create(
            model="gemini-sim",
            messages=[{"role": "user", "content": "Tell me about the sea"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith('You said: "Tell me about the sea"')
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    cost = (chunks[-1].usage.model_extra or {})["cost_micro_credits"]
    settle = _settled(gateway, account)
    assert [r["cost"] for r in settle] == [cost] and settle[0]["estimated"] in (False, 0)


def test_openai_sdk_tools_keep_thought_signatures(
    gateway: Gateway, funded: tuple[str, str]
) -> None:
    client = _openai(gateway, funded[1])
    question: Any = {"role": "user", "content": "What is the weather in Paris?"}
    reply = client.chat.completions.create(
        model="gemini-sim", messages=[question], tools=OPENAI_TOOLS, tool_choice="required"
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    extra = (call.model_extra or {})["extra_content"]
    assert extra["google"]["thought_signature"]
    assistant = reply.choices[0].message.model_dump(exclude_none=True)
    result = {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'}
    final = client.chat.completions.create(
        model="gemini-sim", messages=[question, assistant, result], tools=OPENAI_TOOLS
    )
    assert final.choices[0].message.content
    assistant["tool_calls"][0]["extra_content"] = {"google": {"thought_signature": "Zm9yZ2Vk"}}
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gemini-sim", messages=[question, assistant, result], tools=OPENAI_TOOLS
        )
    stream = client.chat.completions.create(
        model="gemini-sim", messages=[question], tools=OPENAI_TOOLS, stream=True
    )
    deltas = [tc for c in stream if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [d.function.name for d in deltas if d.function] == ["get_weather"]
    assert (deltas[0].model_extra or {})["extra_content"]["google"]["thought_signature"]


def test_openai_sdk_gemini_extensions_reach_the_upstream(
    gateway: Gateway, funded: tuple[str, str]
) -> None:
    client = _openai(gateway, funded[1])
    messages: Any = [{"role": "user", "content": "Draw a dot"}]
    reply = client.chat.completions.create(
        model="gemini-sim",
        messages=messages,
        extra_body={
            "responseModalities": ["TEXT", "IMAGE"],
            "thinkingLevel": "low",
            "safetySettings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
            ],
        },
    )
    message = reply.choices[0].message
    images = (message.model_extra or {})["images"]
    assert images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert (message.model_extra or {})["reasoning_content"]
    assert reply.usage and reply.usage.completion_tokens_details
    assert reply.usage.completion_tokens_details.reasoning_tokens == 8
    snake = client.chat.completions.create(
        model="gemini-sim",
        messages=messages,
        extra_body={"thinking_level": "high", "response_modalities": ["TEXT"]},
    )
    assert snake.usage and snake.usage.completion_tokens_details
    assert snake.usage.completion_tokens_details.reasoning_tokens == 32
    with pytest.raises(openai.BadRequestError) as err:  # the sim validates safety settings
        client.chat.completions.create(
            model="gemini-sim",
            messages=messages,
            extra_body={"safety_settings": [{"category": "NOT_A_CATEGORY", "threshold": "OFF"}]},
        )
    assert "safety_settings[0].category" in err.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gemini-sim", messages=messages, logprobs=True)
    assert refused.value.code == "unsupported_feature"


@pytest.fixture(scope="module")
def own_gateway(sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway of this module's own: faults cool its deployments down, not the shared ones';
    and it has an embedding model on the Gemini upstream."""
    price = ", ".join(f"{k} = {v}" for k, v in PRICES.items())
    extra = "".join(
        f'[models."{name}"]\nkind = "{kind}"\nprovider = "{provider}"\n'
        f'upstream = "{upstream}"\nprice = {{ {price} }}\n'
        for name, kind, provider, upstream in (
            ("gemini-embed", "embedding", "sim-gemini", "gemini-embedding-001"),
            ("gemini-faulty", "chat", "sim-gemini", "gemini-2.5-flash"),
            ("openai-faulty", "chat", "sim", "sim-faulty"),
            ("gemini-cut", "chat", "sim-gemini", "gemini-2.5-flash"),
        )
    )
    gw = start_gateway(sim.url, tmp_path_factory.mktemp("gwgemini"), extra_models=extra)
    yield gw
    stop(gw.proc)


@pytest.mark.parametrize("model", ["gemini-faulty", "openai-faulty"])
def test_upstream_rate_limit_is_a_503_with_retry_after(own_gateway: Gateway, model: str) -> None:
    """The gateway never shows an upstream 429: the deployment cools down for its Retry-After
    and, with nothing else to serve, the client gets 503 UNAVAILABLE with that Retry-After."""
    account, key = own_gateway.account(1_000_000)
    limited = types.GenerateContentConfig(labels={"sim_fault": "status=429;retry_after=3"})
    with pytest.raises(errors.ServerError) as err:
        _client(own_gateway, key).models.generate_content(
            model=model, contents="hi", config=limited
        )
    assert err.value.code == 503 and err.value.status == "UNAVAILABLE"
    assert err.value.response.headers["retry-after"] == "3"  # type: ignore[union-attr]
    ledger_consistent(own_gateway, account)


def test_error_after_the_first_byte_is_a_final_error_event(own_gateway: Gateway) -> None:
    account, key = own_gateway.account(1_000_000)
    config = types.GenerateContentConfig(labels={"sim_fault": "cut_after=3"})
    stream = _client(own_gateway, key).models.generate_content_stream(
        model="gemini-cut", contents="Tell me about the sea", config=config
    )
    received: list[str] = []

    def consume() -> None:
        for chunk in stream:
            received.append(chunk.text or "")

    with pytest.raises(errors.APIError) as err:
        consume()
    assert received and err.value.code >= 500
    settle = _settled(own_gateway, account)
    assert len(settle) == 1 and settle[0]["estimated"] in (True, 1)
    ledger_consistent(own_gateway, account)


def test_embeddings_on_a_gemini_upstream(own_gateway: Gateway) -> None:
    account, key = own_gateway.account(1_000_000)
    client = _openai(own_gateway, key)
    result = client.embeddings.create(model="gemini-embed", input=["a b", "c"], dimensions=4)
    assert [len(d.embedding) for d in result.data] == [4, 4]
    assert result.usage.prompt_tokens == 3
    settle = _settled(own_gateway, account)
    assert [r["cost"] for r in settle] == [3] and settle[0]["estimated"] in (False, 0)
    native = _client(own_gateway, key).models.embed_content(
        model="gemini-embed", contents=["a b", "c"]
    )
    assert native.embeddings and len(native.embeddings[0].values or []) == 8
    assert native.usage_metadata and native.usage_metadata.prompt_token_count == 3
