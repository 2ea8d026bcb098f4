"""Chat calls on the runner: the chat kind spec, the response cache, and the stream relay
that decodes chat events and settles once however the stream ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import asdict, replace
from typing import Any, cast

import orjson

from faregate import tokens
from faregate.billing.charge import Charge
from faregate.billing.pricing import cost_of, worst_case
from faregate.billing.types import KeyRecord, Usage
from faregate.errors import FailureClass, FaregateError, UpstreamError
from faregate.kinds import Kind
from faregate.pipeline import guard, runner
from faregate.pipeline.cache import cache_key
from faregate.pipeline.services import Services
from faregate.providers.base import (
    Adapter,
    ChatCall,
    ChatProtocol,
    ChatResult,
    Credentials,
    StreamEvent,
    UpstreamRequest,
)
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import ModelEntry
from faregate.trace import current as current_trace
from faregate.upstream.base import UpstreamStream
from faregate.upstream.fetch import inline_remote_images

Completed = runner.Done[ChatResult]
OpenStream = runner.OpenStream[StreamEvent]


def hold_amount(chain: list[ModelEntry], call: ChatCall) -> int:
    """The worst case over every model that may serve (the model and its fallbacks): a
    byte-bounded prompt and every output token allowed, per choice. A client's output cap
    above a model's is clamped to the model's, here and in every attempt's request."""
    body = call.body
    n = body.get("n")
    choices = n if isinstance(n, int) and n > 1 else 1
    prompt = tokens.prompt_upper_bound(body.get("messages") or [], body.get("tools"))
    worst = 0
    for entry in chain:
        max_out = min(call.max_output or entry.max_output_tokens, entry.max_output_tokens)
        worst = max(worst, worst_case(entry.price, prompt, max_out * choices))
    return worst


def _estimate(call: ChatCall, completion_text: str) -> Usage:
    """Usage the upstream did not report, counted from what was sent and received."""
    body = call.body
    return Usage(
        prompt_tokens=tokens.count_messages(body.get("messages") or [], body.get("tools")),
        completion_tokens=tokens.count_text(completion_text),
        estimated=True,
    )


def _reply_text(result: ChatResult) -> str:
    parts: list[str] = []
    for choice in result.body.get("choices") or ():
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append(str(fn.get("name", "")) + str(fn.get("arguments", "")))
    return " ".join(parts)


def _usage(call: ChatCall, result: ChatResult) -> Usage:
    return result.usage or _estimate(call, _reply_text(result))


async def _upstream_request(
    svc: Services, call: ChatCall, attempt: Attempt
) -> tuple[UpstreamRequest, Credentials]:
    """The wire request for the attempt's deployment: output capped at the model's limit,
    remote images fetched first where its protocol needs them."""
    dep = attempt.deployment
    protocol = cast(ChatProtocol, dep.adapter)
    limit = attempt.model.max_output_tokens
    # Every attempt is capped at its model's output limit, so the upstream cannot produce
    # more than the hold covers.
    capped = min(call.max_output or limit, limit)
    if capped != call.max_output:  # a copy only when the cap changes the call
        call = call.with_max_output(capped)
    if protocol.inline_remote_images:
        call = replace(call, body=await inline_remote_images(svc.fetcher, call.body))
    creds = dep.creds(attempt.key)
    return protocol.build_request(call, dep.upstream_model, creds), creds


def _parse(adapter: Adapter, body: bytes, call: ChatCall) -> ChatResult:
    return cast(ChatProtocol, adapter).parse_response(body)


CHAT: runner.KindSpec[ChatCall, ChatResult] = runner.KindSpec(
    kind=Kind.CHAT,
    hold=hold_amount,
    request=_upstream_request,
    parse=_parse,
    usage=_usage,
    screened=lambda call: guard.caller_texts(call.body.get("messages") or ()),
)


async def complete(svc: Services, key: KeyRecord, call: ChatCall) -> Completed:
    """A non-streaming chat call, retried and fallen back as routing allows, settled at the
    price of the model that served before it returns; the response cache answers first."""
    entry, charge = await runner.admit(svc, CHAT, key, call)
    async with charge:
        cache = entry.cache if entry.cache is not None and entry.cache.enabled else None
        if cache is None:
            return await runner.serve(svc, CHAT, entry, charge, call)
        ckey = cache_key(key.id, entry.name, call.body)
        hit = await svc.cache.get(ckey)
        svc.metrics.cache.labels(entry.name, "hit" if hit else "miss").inc()
        if hit is not None:
            trace = current_trace.get()
            if trace is not None:
                trace.model = entry.name
            stored = orjson.loads(hit)
            usage = Usage(**stored["usage"])
            cost = await runner.settle(
                charge, cache.price, usage, "response cache hit", cached=True
            )
            result = ChatResult(stored["body"], usage)
            return Completed(result, usage, cost, entry.name, None, [], cached=True)
        done = await runner.serve(svc, CHAT, entry, charge, call)
        if done.model == entry.name and not done.usage.estimated:
            value = {"body": done.result.body, "usage": asdict(done.usage)}
            await svc.cache.set(ckey, orjson.dumps(value), cache.ttl_seconds)
    return done


def open_stream(
    svc: Services,
    key: KeyRecord,
    call: ChatCall,
    spec: runner.KindSpec[ChatCall, ChatResult] = CHAT,
) -> Awaitable[OpenStream]:
    """A streaming chat call: the runner opens it (fallback only before the first byte), and
    `_events` relays it. (The runner's coroutine itself, so no frame is added to it.) `spec`:
    a variant of the chat spec that builds or parses some attempts otherwise."""
    return runner.open_stream(svc, spec, key, call, _events)


def _usage_chunk(last: dict[str, Any] | None, usage: Usage) -> dict[str, Any]:
    """A final usage chunk for a stream whose upstream sent none (estimated usage)."""
    last = last or {}
    return {
        "id": last.get("id", ""),
        "object": "chat.completion.chunk",
        "created": last.get("created", 0),
        "model": last.get("model", ""),
        "choices": [],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "estimated": True,
        },
    }


def _joined(produced: list[str | StreamEvent]) -> str:
    """The text of a stream so far; unread events are parsed now, for an estimate."""
    return "".join(p if isinstance(p, str) else p.text for p in produced)


async def _events(
    svc: Services,
    call: ChatCall,
    served: Attempt,
    charge: Charge,
    upstream: UpstreamStream,
    first: bytes,
    chunks: AsyncIterator[bytes],
) -> AsyncGenerator[StreamEvent | FaregateError, None]:
    """Forward decoded events as they arrive; settle exactly once however the stream ends:
    from the upstream's usage, else from the text produced (marked estimated)."""
    entry = served.model
    decoder = cast(ChatProtocol, served.deployment.adapter).stream_decoder()
    produced: list[str | StreamEvent] = []  # the text so far, or an unread event holding it
    usage: Usage | None = None
    last: StreamEvent | None = None
    finished = saw_finish = False
    note: str | None = "the client disconnected mid-stream; usage estimated from the text produced"
    try:
        chunk = first
        while chunk and not finished:
            for event in decoder.feed(chunk):
                if event.ends:
                    finished = True
                    if usage is None:
                        usage = _estimate(call, _joined(produced))
                        note = "the stream ended without usage; estimated from the text"
                        yield StreamEvent(
                            _usage_chunk(last.data if last is not None else None, usage),
                            None,
                            usage,
                            is_usage_only=True,
                            cost=cost_of(entry.price, usage),
                        )
                    yield event
                    break
                last = event
                saw_finish = saw_finish or event.finish_reason is not None
                if not event.parsed:
                    produced.append(event)
                elif event.text:
                    produced.append(event.text)
                if event.usage is not None:
                    usage = event.usage
                    event.cost = cost_of(entry.price, usage)
                yield event
            if not finished:
                chunk = await anext(chunks, b"")
        if not finished and not saw_finish:
            raise UpstreamError(FailureClass.TRANSIENT, "the stream ended before it was complete")
    except UpstreamError as exc:
        note = f"the stream broke after the first byte ({exc.failure.value}): {exc.message}"
        svc.balancer.broke_mid_stream(served, exc)
        yield exc.to_client_mid_stream()
    finally:
        if usage is None or usage.estimated:
            usage = _estimate(call, _joined(produced))
        else:
            note = None
        if finished:  # the content ended: only the body's terminator may be on its way
            upstream.release()
        else:  # the client left or the stream broke: the provider sees the connection go
            upstream.close()
        svc.balancer.used(served, usage.prompt_tokens, usage.completion_tokens)
        await runner.settle(charge, entry.price, usage, note)
