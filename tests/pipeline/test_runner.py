"""The runner on a scripted upstream and an in-memory ledger: what each request holds, settles
or releases, which deployments it tries, and how streams end."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from pipeline.fakes import KEY, FakeStore, FakeUpstream, Script, reply, services, transport_error

from faregate import tokens
from faregate.errors import BadRequest, FaregateError, ServiceUnavailable
from faregate.pipeline.chat import complete, hold_amount, open_stream
from faregate.pipeline.embeddings import embed
from faregate.providers.base import ChatCall, EmbedCall, StreamEvent
from faregate.trace import Trace, current

A, B, C = "http://a.test/v1", "http://b.test/v1", "http://c.test/v1"
BALANCE = 1_000_000
PRICE = {"input": 1_000_000, "output": 2_000_000}  # 1 credit per prompt token, 2 per output
CHEAP = {"input": 500_000, "output": 1_000_000}

CONFIG: dict[str, Any] = {
    "routing": {"wait_for_recovery_seconds": 0},
    "providers": {"a": {"base_url": A}, "b": {"base_url": B}, "c": {"base_url": C}},
    "models": {
        "m": {
            "deployments": [{"provider": "a", "priority": 0}, {"provider": "b", "priority": 1}],
            "price": PRICE,
            "max_output_tokens": 100,
        },
        "solo": {"provider": "a", "price": PRICE, "fallbacks": ["cheap"], "max_output_tokens": 50},
        "cheap": {"provider": "c", "price": CHEAP, "max_output_tokens": 100},
        "e": {"kind": "embedding", "provider": "a", "price": {"input": 1_000_000, "output": 0}},
    },
}


def chat_body(content: str = "Paris.", usage: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "up",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16}
    return body


def sse(data: dict[str, Any] | str) -> bytes:
    return b"data: " + (data.encode() if isinstance(data, str) else orjson.dumps(data)) + b"\n\n"


def chunk(text: str | None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    return sse(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


USAGE_CHUNK = sse(
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
)
DONE = sse("[DONE]")


def call(model: str = "m", *, stream: bool = False, max_output: int | None = 10) -> ChatCall:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return ChatCall(model, body, stream, stream, max_output, "req_1")


def setup(**scripts: list[Script]) -> tuple[Any, FakeUpstream, FakeStore]:
    urls = {"a": A, "b": B, "c": C}
    upstream = FakeUpstream({urls[name]: answers for name, answers in scripts.items()})
    store = FakeStore(BALANCE)
    return services(CONFIG, upstream, store), upstream, store


def only_hold(store: FakeStore) -> tuple[str, int]:
    [(hold_id, amount)] = store.holds.items()
    return hold_id, amount


async def test_success_holds_the_worst_case_and_settles_the_exact_cost() -> None:
    svc, upstream, store = setup(a=[reply(200, chat_body())])
    trace = Trace("chat")
    token = current.set(trace)
    try:
        done = await complete(svc, KEY, call())
    finally:
        current.reset(token)
    hold_id, amount = only_hold(store)
    assert amount == hold_amount(svc.catalog.chain(svc.catalog.get("m")), call()) > 0
    settled = store.settled[hold_id]
    assert (settled.cost, settled.prompt_tokens, settled.completion_tokens) == (18, 14, 2)
    assert not settled.estimated and settled.note is None
    assert store.balance == BALANCE - 18 and not store.released
    assert (done.model, done.cost, [s.base_url for s in upstream.sent]) == ("m", 18, [A])
    assert upstream.sent[0].body["max_tokens"] == 10  # the attempt carries the output cap
    assert (trace.model, trace.cost, trace.prompt_tokens, trace.completion_tokens) == (
        "m",
        18,
        14,
        2,
    )


async def test_a_failed_deployment_falls_back_to_the_next() -> None:
    svc, upstream, store = setup(a=[reply(503, b"busy")], b=[reply(200, chat_body())])
    done = await complete(svc, KEY, call())
    assert [s.base_url for s in upstream.sent] == [A, B]
    assert done.deployment is not None and done.deployment.provider == "b"
    assert [a.outcome for a in done.attempts] == ["transient", "ok"]
    assert store.settled[only_hold(store)[0]].cost == 18


async def test_fallback_to_another_model_is_priced_at_the_model_that_served() -> None:
    svc, upstream, store = setup(a=[transport_error()], c=[reply(200, chat_body())])
    done = await complete(svc, KEY, call("solo"))
    assert [s.base_url for s in upstream.sent] == [A, C]
    assert done.model == "cheap"
    # 14 prompt tokens at 0.5 and 2 output tokens at 1 micro-credit
    hold_id, amount = only_hold(store)
    assert store.settled[hold_id].cost == 9
    assert store.balance == BALANCE - 9
    # The hold covered the dearer model of the chain.
    assert amount == hold_amount(svc.catalog.chain(svc.catalog.get("solo")), call("solo"))


async def test_a_caller_error_is_not_retried_and_releases_the_hold() -> None:
    error = {"error": {"message": "bad tool schema", "type": "invalid_request_error"}}
    svc, upstream, store = setup(a=[reply(400, error)], b=[reply(200, chat_body())])
    with pytest.raises(FaregateError) as err:
        await complete(svc, KEY, call())
    assert err.value.status == 400
    assert [s.base_url for s in upstream.sent] == [A]
    assert list(store.released) == [only_hold(store)[0]] and not store.settled
    assert store.balance == BALANCE


async def test_an_output_cap_above_the_model_is_clamped_in_the_hold_and_upstream() -> None:
    svc, upstream, store = setup(a=[reply(200, chat_body())])
    asked = call(max_output=128_000)
    await complete(svc, KEY, asked)
    _, amount = only_hold(store)
    capped = hold_amount([svc.catalog.get("m")], call(max_output=100))
    assert amount == capped == hold_amount([svc.catalog.get("m")], call(max_output=None))
    [sent] = upstream.sent
    assert sent.body["max_tokens"] == 100


async def test_a_model_of_another_kind_is_refused_before_any_hold() -> None:
    svc, upstream, store = setup()
    with pytest.raises(BadRequest) as err:
        await complete(svc, KEY, call("e"))
    assert err.value.code == "wrong_model_kind"
    assert not store.holds and not upstream.sent


async def test_usage_missing_is_estimated() -> None:
    svc, _, store = setup(a=[reply(200, chat_body("one two three", usage=False))])
    done = await complete(svc, KEY, call())
    settled = store.settled[only_hold(store)[0]]
    assert settled.estimated and done.usage.estimated
    assert settled.completion_tokens > 0 and settled.cost == done.cost > 0


async def test_a_cancelled_call_releases_its_hold() -> None:
    svc, upstream, store = setup(a=[Script(hang=True)])
    task = asyncio.ensure_future(complete(svc, KEY, call()))
    await upstream.arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(store.released) == [only_hold(store)[0]] and store.balance == BALANCE


async def test_the_response_cache_answers_a_repeat_at_the_cache_price() -> None:
    config = {**CONFIG, "models": {**CONFIG["models"]}}
    config["models"]["m"] = {**config["models"]["m"], "cache": {"price": CHEAP}}
    upstream = FakeUpstream({A: [reply(200, chat_body())]})
    store = FakeStore(BALANCE)
    svc = services(config, upstream, store)
    first = await complete(svc, KEY, call())
    again = await complete(svc, KEY, call())
    assert len(upstream.sent) == 1 and again.cached and not first.cached
    costs = [store.settled[h].cost for h in store.holds]
    assert costs == [18, 9]
    assert [store.settled[h].note for h in store.holds] == [None, "response cache hit"]


# -- streams --------------------------------------------------------------------------------


async def drain(events: Any) -> list[StreamEvent | FaregateError]:
    return [event async for event in events]


async def test_a_stream_settles_once_on_the_upstream_usage() -> None:
    body = [chunk("Hel"), chunk("lo", "stop"), USAGE_CHUNK, DONE]
    svc, upstream, store = setup(a=[Script(chunks=body)])
    opened = await open_stream(svc, KEY, call(stream=True))
    hold_id, _ = only_hold(store)
    assert not store.settled  # nothing settles before the stream ends
    events = await drain(opened.events)
    settled = store.settled[hold_id]
    assert (settled.prompt_tokens, settled.completion_tokens, settled.cost) == (9, 3, 15)
    assert not settled.estimated and settled.note is None
    assert [e.cost for e in events if isinstance(e, StreamEvent) and e.cost is not None] == [15]
    assert upstream.streams[0].closed and store.balance == BALANCE - 15
    assert upstream.streams[0].released  # its content ended: the connection may be reused


async def test_a_stream_without_usage_settles_an_estimate() -> None:
    svc, _, store = setup(a=[Script(chunks=[chunk("Hello there"), chunk(None, "stop"), DONE])])
    opened = await open_stream(svc, KEY, call(stream=True))
    events = await drain(opened.events)
    settled = store.settled[only_hold(store)[0]]
    assert settled.estimated and settled.note is not None and "estimated" in settled.note
    synthesized = [e for e in events if isinstance(e, StreamEvent) and e.is_usage_only]
    assert len(synthesized) == 1 and synthesized[0].cost == settled.cost > 0


async def test_a_stream_failing_before_its_first_byte_falls_back_then_releases() -> None:
    svc, upstream, store = setup(a=[transport_error()], b=[reply(503, b"busy")])
    with pytest.raises(FaregateError) as err:
        await open_stream(svc, KEY, call(stream=True))
    assert err.value.status in (502, 503)
    assert [s.base_url for s in upstream.sent] == [A, B, A]  # routing.max_attempts = 3
    hold_id, _ = only_hold(store)
    assert store.released[hold_id].startswith("no upstream delivered a first byte")
    assert not store.settled and store.balance == BALANCE


async def test_a_stream_that_breaks_after_its_first_byte_is_settled_on_an_estimate() -> None:
    body = [chunk("Hello"), chunk(" world"), chunk("!"), DONE]
    svc, upstream, store = setup(a=[Script(chunks=body, break_after=2)], b=[reply(200, b"")])
    opened = await open_stream(svc, KEY, call(stream=True))
    events = await drain(opened.events)
    assert isinstance(events[-1], FaregateError)  # the client gets an error event
    assert [s.base_url for s in upstream.sent] == [A]  # never retried once a byte went out
    settled = store.settled[only_hold(store)[0]]
    assert settled.estimated and settled.note is not None and "broke" in settled.note
    assert upstream.streams[0].closed and not upstream.streams[0].released


async def test_content_chunks_cross_the_pipeline_unread() -> None:
    body = [chunk("Hel"), chunk("lo"), chunk(None, "stop"), USAGE_CHUNK, DONE]
    svc, _, _ = setup(a=[Script(chunks=body)])
    events = await drain((await open_stream(svc, KEY, call(stream=True))).events)
    relayed = [e for e in events if isinstance(e, StreamEvent)]
    assert [e.raw for e in relayed] == body
    assert [e.parsed for e in relayed] == [False, False, True, True, True]


async def test_unread_chunks_still_count_when_a_stream_breaks() -> None:
    body = [chunk("Hello"), chunk(" world"), chunk("!"), DONE]
    svc, _, store = setup(a=[Script(chunks=body, break_after=2)])
    await drain((await open_stream(svc, KEY, call(stream=True))).events)
    settled = store.settled[only_hold(store)[0]]
    assert settled.estimated
    assert settled.completion_tokens == tokens.count_text("Hello world")


async def test_a_client_disconnect_mid_stream_settles_what_was_produced() -> None:
    body = [chunk("Hello"), chunk(" world"), chunk(None, "stop"), USAGE_CHUNK, DONE]
    svc, upstream, store = setup(a=[Script(chunks=body)])
    opened = await open_stream(svc, KEY, call(stream=True))
    first = await anext(opened.events)
    assert isinstance(first, StreamEvent) and first.text == "Hello"
    await opened.events.aclose()  # the client went away
    settled = store.settled[only_hold(store)[0]]
    assert settled.estimated and settled.note is not None and "disconnected" in settled.note
    assert settled.completion_tokens >= 1 and store.balance == BALANCE - settled.cost
    assert upstream.streams[0].closed  # the provider sees the connection go, and stops
    assert not upstream.streams[0].released


async def test_no_deployment_left_answers_503_and_releases() -> None:
    svc, _, store = setup(a=[reply(429, b"slow down")], b=[reply(429, b"slow down")])
    with pytest.raises(ServiceUnavailable):
        await complete(svc, KEY, call())
    assert list(store.released) == [only_hold(store)[0]] and store.balance == BALANCE


# -- embeddings -----------------------------------------------------------------------------


def embed_call(*texts: str) -> EmbedCall:
    return EmbedCall("e", list(texts), {"model": "e", "input": list(texts)}, "req_e")


def vectors(usage: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "list", "data": [{"index": 0, "embedding": [0.1, 0.2]}]}
    if usage:
        body["usage"] = {"prompt_tokens": 3, "total_tokens": 3}
    return body


async def test_embeddings_hold_the_input_bound_and_settle_the_reported_usage() -> None:
    svc, upstream, store = setup(a=[reply(200, vectors(usage=True))])
    done = await embed(svc, KEY, embed_call("héllo", "x"))
    hold_id, amount = only_hold(store)
    assert amount == len("héllo".encode()) + 1  # one credit per byte of input
    settled = store.settled[hold_id]
    assert (settled.cost, settled.prompt_tokens, settled.note) == (3, 3, None)
    assert done.cost == 3 and done.model == "e" and upstream.sent[0].path == "/embeddings"


async def test_embeddings_without_usage_are_estimated_and_noted() -> None:
    svc, _, store = setup(a=[reply(200, vectors(usage=False))])
    await embed(svc, KEY, embed_call("one two three"))
    settled = store.settled[only_hold(store)[0]]
    assert settled.estimated and settled.note == "estimated: the provider reported no usage"


async def test_embeddings_failures_release() -> None:
    svc, upstream, store = setup(a=[transport_error()])
    with pytest.raises(FaregateError):
        await embed(svc, KEY, embed_call("x"))
    assert len(upstream.sent) >= 1
    assert list(store.released) == [only_hold(store)[0]] and store.balance == BALANCE
