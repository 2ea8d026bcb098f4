"""Scripted faults on the wire: errors, hangs, stalls, cuts, recovery and selection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from faregate.sim.server import start
from faregate.tokens import count_text

AUTH = {"Authorization": "Bearer sk-test"}
MESSAGES: list[Any] = [{"role": "user", "content": "Write a short poem about the sea."}]
BODY: dict[str, Any] = {"model": "sim-small", "messages": MESSAGES}
STREAM_BODY: dict[str, Any] = {
    **BODY,
    "stream": True,
    "stream_options": {"include_usage": True},
}


def fault(script: str) -> dict[str, str]:
    return {**AUTH, "x-sim-fault": script}


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    async with http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def read_events(resp: aiohttp.ClientResponse, events: list[Any]) -> None:
    """Collect SSE payloads into `events` as they arrive (kept on failure)."""
    buffer = b""
    async for data in resp.content.iter_any():
        buffer += data
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            payload = block.removeprefix(b"data: ")
            events.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))


def content_chunks(events: list[Any]) -> list[str]:
    return [
        e["choices"][0]["delta"]["content"]
        for e in events
        if e != "[DONE]" and e["choices"] and e["choices"][0]["delta"].get("content")
    ]


async def test_rate_limit_with_retry_after(
    sim_url: str, http: aiohttp.ClientSession, client: openai.AsyncOpenAI
) -> None:
    status, headers, body = await post(http, sim_url, BODY, fault("status=429;retry_after=2"))
    assert status == 429
    assert headers["Retry-After"] == "2"
    assert headers["retry-after-ms"] == "2000"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-ratelimit-limit-tokens" in headers
    assert body["error"]["type"] == "rate_limit_exceeded"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert "Rate limit reached" in body["error"]["message"]
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-sim-fault": "status=429"}
        )
    assert info.value.response.headers["retry-after"] == "1"


async def test_invalid_key_and_refused_model(sim_url: str, http: aiohttp.ClientSession) -> None:
    status, _, body = await post(http, sim_url, BODY, fault("error_type=invalid_api_key"))
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, _, body = await post(http, sim_url, BODY, fault("error_type=model_not_allowed"))
    assert status == 403 and body["error"]["code"] == "model_not_found"
    assert "does not have access to model" in body["error"]["message"]


async def test_insufficient_quota(sim_url: str, http: aiohttp.ClientSession) -> None:
    status, headers, body = await post(http, sim_url, BODY, fault("error_type=insufficient_quota"))
    assert status == 429
    assert "Retry-After" not in headers
    error = body["error"]
    assert error["type"] == error["code"] == "insufficient_quota"
    assert error["message"].startswith("You exceeded your current quota")


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (404, openai.NotFoundError, "invalid_request_error"),
        (500, openai.InternalServerError, "server_error"),
        (502, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
async def test_error_statuses(
    client: openai.AsyncOpenAI, status: int, error_class: type[Exception], error_type: str
) -> None:
    with pytest.raises(error_class) as info:
        await client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-sim-fault": f"status={status}"}
        )
    assert isinstance(info.value, openai.APIStatusError)
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == error_type
    assert info.value.body["message"]


async def test_errors_apply_to_streams_before_headers(
    sim_url: str, http: aiohttp.ClientSession
) -> None:
    status, headers, body = await post(http, sim_url, STREAM_BODY, fault("status=503"))
    assert status == 503
    assert headers["Content-Type"].startswith("application/json")
    assert body["error"]["type"] == "server_error"


async def test_unknown_directive_is_400(sim_url: str, http: aiohttp.ClientSession) -> None:
    status, _, body = await post(http, sim_url, BODY, fault("status=500;explode=now"))
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert "explode=now" in body["error"]["message"]


async def test_hang_times_out(client: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.with_options(timeout=0.3).chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-sim-fault": "hang"}
        )
    assert time.monotonic() - started < 3


async def test_latency(sim_url: str, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    status, _, _ = await post(http, sim_url, BODY, fault("latency_ms=200"))
    assert status == 200
    assert time.monotonic() - started >= 0.2


async def test_app_level_delays() -> None:
    runner, port = await start("127.0.0.1", 0, latency_ms=150, chunk_delay_ms=20)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            url = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            assert (await post(http, url, BODY, AUTH))[0] == 200
            assert time.monotonic() - started >= 0.15
            started = time.monotonic()
            assert (await post(http, url, BODY, fault("latency_ms=0")))[0] == 200
            assert time.monotonic() - started < 0.15
            body = {**STREAM_BODY, "messages": [{"role": "user", "content": "hi"}]}
            started = time.monotonic()
            headers = fault("latency_ms=0;tokens=5")
            async with http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r:
                events: list[Any] = []
                await read_events(r, events)
            # role, 5 content, finish, usage, [DONE]: 8 gaps of 20 ms
            assert len(events) == 9
            assert time.monotonic() - started >= 0.16
    finally:
        await runner.cleanup()


async def test_chunk_delay(sim_url: str, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    headers = fault("chunk_delay_ms=30;tokens=4")
    async with http.post(
        f"{sim_url}/v1/chat/completions", json=STREAM_BODY, headers=headers
    ) as resp:
        events: list[Any] = []
        await read_events(resp, events)
    assert len(content_chunks(events)) == 4
    assert time.monotonic() - started >= 0.2


async def stream_events(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    script: str,
    events: list[Any],
    sock_read: float | None = None,
) -> None:
    """POST and collect SSE events into `events` (kept when the stream fails)."""
    async with http.post(
        f"{url}/v1/chat/completions",
        json=body,
        headers=fault(script),
        timeout=aiohttp.ClientTimeout(total=5, sock_read=sock_read),
    ) as resp:
        assert resp.status == 200
        await read_events(resp, events)


async def sdk_stream_pieces(
    client: openai.AsyncOpenAI, script: str, pieces: list[str], seconds: float = 5.0
) -> None:
    """Stream through the SDK, collecting non-empty content deltas into `pieces`."""
    stream = await client.with_options(timeout=seconds).chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers={"x-sim-fault": script}
    )
    async for chunk in stream:
        pieces.extend(c.delta.content for c in chunk.choices if c.delta.content)


async def read_body(
    http: aiohttp.ClientSession, url: str, script: str, sock_read: float | None = None
) -> bytes:
    async with http.post(
        f"{url}/v1/chat/completions",
        json=BODY,
        headers=fault(script),
        timeout=aiohttp.ClientTimeout(total=5, sock_read=sock_read),
    ) as resp:
        assert resp.status == 200
        return await resp.read()


async def test_stall_after(sim_url: str, http: aiohttp.ClientSession) -> None:
    events: list[Any] = []
    with pytest.raises(asyncio.TimeoutError):
        await stream_events(http, sim_url, STREAM_BODY, "stall_after=3", events, sock_read=0.3)
    assert len(content_chunks(events)) == 3
    assert "[DONE]" not in events


async def test_stall_after_with_sdk(client: openai.AsyncOpenAI) -> None:
    pieces: list[str] = []
    with pytest.raises(openai.APITimeoutError):
        await sdk_stream_pieces(client, "stall_after=2", pieces, seconds=0.3)
    assert len(pieces) == 2


async def test_cut_after(sim_url: str, http: aiohttp.ClientSession) -> None:
    events: list[Any] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        await stream_events(http, sim_url, STREAM_BODY, "cut_after=3", events)
    assert len(content_chunks(events)) == 3
    assert "[DONE]" not in events


async def test_cut_after_with_sdk(client: openai.AsyncOpenAI) -> None:
    pieces: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        await sdk_stream_pieces(client, "cut_after=3", pieces)
    assert len(pieces) == 3


async def test_tool_stream_cut(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {
        **STREAM_BODY,
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [
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
        ],
    }
    events: list[Any] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        await stream_events(http, sim_url, body, "cut_after=2", events)
    assert len(events) == 3  # the role/header chunk, then two argument fragments
    assert events[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_non_stream_cut_and_stall(sim_url: str, http: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await read_body(http, sim_url, "cut_after=0")
    with pytest.raises(asyncio.TimeoutError):
        await read_body(http, sim_url, "stall_after=0", sock_read=0.3)


async def test_no_usage(sim_url: str, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{sim_url}/v1/chat/completions", json=STREAM_BODY, headers=fault("no_usage")
    ) as resp:
        events: list[Any] = []
        await read_events(resp, events)
    assert events[-1] == "[DONE]"
    assert all(e["choices"] for e in events[:-1])
    assert all(e["usage"] is None for e in events[:-1])


async def test_no_usage_without_a_stream(sim_url: str, http: aiohttp.ClientSession) -> None:
    status, _, body = await post(http, sim_url, BODY, fault("no_usage"))
    assert status == 200 and body["choices"][0]["message"]["content"]
    assert "usage" not in body
    embed = {"model": "sim-embed", "input": ["a", "b"]}
    async with http.post(f"{sim_url}/v1/embeddings", json=embed, headers=fault("no_usage")) as r:
        vectors = await r.json()
    assert r.status == 200 and len(vectors["data"]) == 2 and "usage" not in vectors
    status, _, body = await post(http, sim_url, BODY, AUTH)
    assert body["usage"]["completion_tokens"] > 0  # without the fault: usage as always


async def test_exact_tokens(client: openai.AsyncOpenAI) -> None:
    for tokens in (1, 7, 250):
        completion = await client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-sim-fault": f"tokens={tokens}"}
        )
        assert completion.choices[0].finish_reason == "stop"
        assert count_text(completion.choices[0].message.content or "") == tokens
        assert completion.usage is not None
        assert completion.usage.completion_tokens == tokens


async def test_usage_overrides(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        extra_headers={"x-sim-fault": "tokens=10;cached_tokens=5;reasoning_tokens=4"},
    )
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens == 14
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 5
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 4


async def test_fail_times_recovers(
    sim_url: str, http: aiohttp.ClientSession, client: openai.AsyncOpenAI
) -> None:
    script = "fail_times=2;key=abc;status=503"
    statuses = [(await post(http, sim_url, BODY, fault(script)))[0] for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    other = [(await post(http, sim_url, BODY, fault("fail_times=1;key=xyz")))[0] for _ in range(2)]
    assert other == [500, 200]
    async with http.get(f"{sim_url}/sim/stats") as resp:
        stats = await resp.json()
    assert stats["requests"] == 6
    assert stats["by_model"] == {"sim-small": 6}
    async with http.post(f"{sim_url}/sim/reset"):
        pass
    assert (await post(http, sim_url, BODY, fault(script)))[0] == 503
    # The SDK's own retries recover against the same counter.
    retrying = client.with_options(max_retries=2)
    async with http.post(f"{sim_url}/sim/reset"):
        pass
    completion = await retrying.chat.completions.create(
        model="m",
        messages=MESSAGES,
        extra_headers={"x-sim-fault": "fail_times=2;key=sdk;status=500;retry_after=0.01"},
    )
    assert completion.choices[0].message.content
    async with http.get(f"{sim_url}/sim/stats") as resp:
        assert (await resp.json())["requests"] == 3


@pytest.mark.parametrize(
    ("extra", "headers"),
    [
        ({}, fault("status=429")),
        ({"metadata": {"sim_fault": "status=429"}}, AUTH),
        ({"user": "sim:status=429"}, AUTH),
    ],
)
async def test_fault_sources(
    sim_url: str, http: aiohttp.ClientSession, extra: dict[str, Any], headers: dict[str, str]
) -> None:
    status, _, body = await post(http, sim_url, {**BODY, **extra}, headers)
    assert status == 429
    assert body["error"]["code"] == "rate_limit_exceeded"


async def test_fault_sources_with_sdk(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="m", messages=MESSAGES, user="sim:status=500")
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="m", messages=MESSAGES, metadata={"sim_fault": "status=502"}
        )
    plain = await client.chat.completions.create(model="m", messages=MESSAGES, user="alice")
    assert plain.choices[0].message.content


@pytest.fixture
async def cancelled_hang_server() -> AsyncIterator[str]:
    runner, port = await start("127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}"
    started = time.monotonic()
    await runner.cleanup()
    assert time.monotonic() - started < 2


async def test_hang_ends_when_client_leaves(cancelled_hang_server: str) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(post(http, cancelled_hang_server, BODY, fault("hang")), 0.2)
