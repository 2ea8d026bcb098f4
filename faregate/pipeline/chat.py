"""Chat calls: admit, call the upstream, stream or return, settle the exact cost."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

from faregate import tokens
from faregate.billing.charge import Charge
from faregate.billing.pricing import cost_of
from faregate.billing.types import KeyRecord, Price, Settlement, Usage
from faregate.errors import FailureClass, FaregateError, UpstreamError
from faregate.pipeline.admission import admit
from faregate.pipeline.attempts import run_attempts
from faregate.pipeline.cache import cache_key
from faregate.pipeline.services import Services
from faregate.providers.base import (
    ChatCall,
    ChatResult,
    Credentials,
    StreamEvent,
    UpstreamRequest,
)
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import Deployment, ModelEntry
from faregate.trace import current as current_trace
from faregate.upstream.client import Reply, Stream
from faregate.upstream.fetch import inline_remote_images


@dataclass(slots=True)
class Completed:
    result: ChatResult
    usage: Usage
    cost: int
    model: str
    deployment: Deployment | None  # None when the response cache answered
    attempts: list[Attempt]
    cached: bool = False


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


async def _settle(
    charge: Charge,
    entry: ModelEntry,
    usage: Usage,
    note: str | None = None,
    price: Price | None = None,
) -> int:
    """Charge `usage` at the model's price (or `price`), committed before the reply goes."""
    cost = cost_of(price or entry.price, usage)
    trace = current_trace.get()
    if trace is not None:
        trace.prompt_tokens = usage.prompt_tokens
        trace.completion_tokens = usage.completion_tokens
        trace.cost = cost
        trace.estimated = usage.estimated
        trace.cached = price is not None
    settlement = Settlement(
        cost=cost,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        estimated=usage.estimated,
        note=note,
    )
    await charge.settle(settlement)
    return cost


async def _upstream_request(
    svc: Services, attempt: Attempt, call: ChatCall
) -> tuple[UpstreamRequest, Credentials]:
    """The wire request for the attempt's deployment: output capped at the model's limit,
    remote images fetched first where its protocol needs them."""
    dep = attempt.deployment
    limit = attempt.model.max_output_tokens
    # Every attempt is capped at its model's output limit, so the upstream cannot produce
    # more than the hold covers.
    call = replace(call, max_output=min(call.max_output or limit, limit))
    if dep.protocol.inline_remote_images:
        call = replace(call, body=await inline_remote_images(svc.fetcher, call.body))
    creds = dep.creds(attempt.key)
    return dep.protocol.build_request(call, dep.upstream_model, creds), creds


async def complete(svc: Services, key: KeyRecord, call: ChatCall) -> Completed:
    """A non-streaming chat call, retried and fallen back as routing allows, settled at the
    price of the model that served before it returns."""
    entry, charge = await admit(svc, key, call)
    async with charge:
        cache = entry.cache if entry.cache is not None and entry.cache.enabled else None
        ckey = cache_key(key.id, entry.name, call.body) if cache else ""
        if cache is not None:
            hit = await svc.cache.get(ckey)
            svc.metrics.cache.labels(entry.name, "hit" if hit else "miss").inc()
            if hit is not None:
                trace = current_trace.get()
                if trace is not None:
                    trace.model = entry.name
                stored = orjson.loads(hit)
                usage = Usage(**stored["usage"])
                cost = await _settle(charge, entry, usage, "response cache hit", cache.price)
                result = ChatResult(stored["body"], usage)
                return Completed(result, usage, cost, entry.name, None, [], cached=True)

        async def attempt_once(attempt: Attempt) -> ChatResult:
            dep = attempt.deployment
            request, creds = await _upstream_request(svc, attempt, call)
            reply = await svc.upstream.send(creds, request, dep.timeouts)
            if reply.status >= 400:
                raise dep.protocol.classify_error(reply.status, reply.headers, reply.body)
            return dep.protocol.parse_response(reply.body)

        result, served, trail = await run_attempts(svc, entry, attempt_once)
        usage = result.usage or _estimate(call, _reply_text(result))
        svc.balancer.used(served, usage.prompt_tokens, usage.completion_tokens)
        cost = await _settle(charge, served.model, usage)
        if cache is not None and served.model is entry and not usage.estimated:
            value = {"body": result.body, "usage": asdict(usage)}
            await svc.cache.set(ckey, orjson.dumps(value), cache.ttl_seconds)
    return Completed(result, usage, cost, served.model.name, served.deployment, trail)


@dataclass(slots=True)
class OpenStream:
    """A stream whose first bytes have arrived; iterate `events` to forward the rest."""

    events: AsyncGenerator[StreamEvent | FaregateError, None]
    model: str
    deployment: Deployment
    attempts: list[Attempt]


async def open_stream(svc: Services, key: KeyRecord, call: ChatCall) -> OpenStream:
    """Admit, then open upstream streams until one delivers its first chunk: fallback is only
    possible before the client sees a byte, and any failure until then is an ordinary error
    response with its status code."""
    entry, charge = await admit(svc, key, call)

    async def attempt_once(attempt: Attempt) -> tuple[Stream, bytes, AsyncIterator[bytes]]:
        dep = attempt.deployment
        request, creds = await _upstream_request(svc, attempt, call)
        opened = await svc.upstream.stream(creds, request, dep.timeouts)
        if isinstance(opened, Reply):
            raise dep.protocol.classify_error(opened.status, opened.headers, opened.body)
        chunks = opened.chunks()
        try:
            first = await anext(chunks, b"")
        except BaseException:
            opened.close()
            raise
        return opened, first, chunks

    try:
        (opened, first, chunks), served, trail = await run_attempts(svc, entry, attempt_once)
    except FaregateError as exc:
        await charge.release(f"no upstream delivered a first byte: {exc.code}")
        raise
    except BaseException:
        await charge.release("request failed before the first byte")
        raise
    try:
        await charge.confirm()  # no upstream byte reaches the client before the hold is on disk
    except BaseException:
        opened.close()
        await charge.release("request failed before the first byte")
        raise
    events = _events(svc, call, served, charge, opened, first, chunks)
    return OpenStream(events, served.model.name, served.deployment, trail)


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


async def _events(
    svc: Services,
    call: ChatCall,
    served: Attempt,
    charge: Charge,
    upstream: Stream,
    first: bytes,
    chunks: AsyncIterator[bytes],
) -> AsyncGenerator[StreamEvent | FaregateError, None]:
    """Forward decoded events as they arrive; settle exactly once however the stream ends:
    from the upstream's usage, else from the text produced (marked estimated)."""
    entry = served.model
    decoder = served.deployment.protocol.stream_decoder()
    produced: list[str] = []
    usage: Usage | None = None
    last: dict[str, Any] | None = None
    finished = saw_finish = False
    note: str | None = "the client disconnected mid-stream; usage estimated from the text produced"
    try:
        chunk = first
        while chunk and not finished:
            for event in decoder.feed(chunk):
                if event.data is None:
                    finished = True
                    if usage is None:
                        usage = _estimate(call, "".join(produced))
                        note = "the stream ended without usage; estimated from the text"
                        yield StreamEvent(
                            _usage_chunk(last, usage),
                            None,
                            usage,
                            is_usage_only=True,
                            cost=cost_of(entry.price, usage),
                        )
                    yield event
                    break
                last = event.data
                saw_finish = saw_finish or event.finish_reason is not None
                if event.text:
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
            usage = _estimate(call, "".join(produced))
        else:
            note = None
        svc.balancer.used(served, usage.prompt_tokens, usage.completion_tokens)
        await _settle(charge, entry, usage, note)
        upstream.close()
