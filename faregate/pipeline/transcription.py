"""Speech to text on the runner: the hold on the file's duration (or its token bound), the
adapter's request and transcript, and the settlement on the upstream's reported duration."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from functools import partial
from typing import Any, cast

from faregate import tokens
from faregate.billing.charge import Charge
from faregate.billing.pricing import worst_case
from faregate.billing.types import KeyRecord, Price, Usage
from faregate.errors import FaregateError, UpstreamError
from faregate.kinds import Kind
from faregate.pipeline import runner
from faregate.pipeline.attempts import run_attempts
from faregate.pipeline.services import Services
from faregate.providers.audio import TranscribeCall, Transcript, TranscriptionProtocol
from faregate.providers.base import Adapter, Credentials, UpstreamRequest
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import ModelEntry
from faregate.upstream.base import UpstreamStream

Transcribed = runner.Done[Transcript]
OpenTranscript = runner.OpenStream[dict[str, Any]]

AUDIO_TOKENS_PER_SECOND = 50
"""The bound of input tokens per second of audio, for a model priced per token."""


def _seconds(ms: int) -> int:
    return -(-ms // 1000)


def _worst(entry: ModelEntry, call: TranscribeCall) -> int:
    price = entry.price
    if price.audio_second is not None:
        return worst_case(price, units=(("audio_ms", call.duration_ms),))
    prompt = _seconds(call.duration_ms) * AUDIO_TOKENS_PER_SECOND
    prompt += len((call.prompt or "").encode()) + 64
    return worst_case(price, prompt, entry.max_output_tokens)


def hold_amount(chain: list[ModelEntry], call: TranscribeCall) -> int:
    """The worst case over the model and its fallbacks: every second of the file, or (for a
    model priced per token) its token bound and every output token."""
    return max(_worst(entry, call) for entry in chain)


def usage_at(price: Price, call: TranscribeCall, result: Transcript) -> Usage:
    """Seconds of audio (the upstream's reported duration, else the file's) when the price
    sets `audio_second`; tokens as reported (else counted) when it does not."""
    if price.audio_second is not None:
        ms = result.duration_ms if result.duration_ms is not None else call.duration_ms
        got = result.usage or Usage(0, 0)
        return Usage(got.prompt_tokens, got.completion_tokens, units=(("audio_ms", ms),))
    if result.usage is not None:
        return result.usage
    prompt = _seconds(call.duration_ms) * AUDIO_TOKENS_PER_SECOND
    return Usage(prompt, tokens.count_text(result.text), estimated=True)


async def _request(
    svc: Services, call: TranscribeCall, attempt: Attempt
) -> tuple[UpstreamRequest, Credentials]:
    dep = attempt.deployment
    creds = dep.creds(attempt.key)
    adapter = cast(TranscriptionProtocol, dep.adapter)
    return adapter.build_transcription_request(call, dep.upstream_model, creds), creds


def _parse(adapter: Adapter, body: bytes, call: TranscribeCall) -> Transcript:
    return cast(TranscriptionProtocol, adapter).parse_transcription(body, call)


def _usage(call: TranscribeCall, result: Transcript) -> Usage:
    # The runner's generic usage (without a price); `transcribe` settles with `usage_at`.
    return Usage(0, 0, units=(("audio_ms", result.duration_ms or call.duration_ms),))


TRANSCRIPTION: runner.KindSpec[TranscribeCall, Transcript] = runner.KindSpec(
    kind=Kind.AUDIO_TRANSCRIPTION,
    hold=hold_amount,
    request=_request,
    parse=_parse,
    usage=_usage,
)


async def _send_once(svc: Services, call: TranscribeCall, attempt: Attempt) -> Transcript:
    dep = attempt.deployment
    request, creds = await _request(svc, call, attempt)
    reply = await svc.upstream.send(creds, request, dep.timeouts)
    if reply.status >= 400:
        raise dep.adapter.classify_error(reply.status, reply.headers, reply.body)
    return _parse(dep.adapter, reply.body, call)


async def transcribe(svc: Services, key: KeyRecord, call: TranscribeCall) -> Transcribed:
    """Admit and hold, attempts with fallback, settle at the price of the model that served
    (per second or per token, as that price says); any failure releases the hold."""
    entry, charge = await runner.admit(svc, TRANSCRIPTION, key, call)
    async with charge:
        result, served, trail = await run_attempts(svc, entry, partial(_send_once, svc, call))
        price = served.model.price
        usage = usage_at(price, call, result)
        svc.balancer.used(served, usage.prompt_tokens, usage.completion_tokens)
        note = "estimated: the provider reported no usage" if usage.estimated else None
        cost = await runner.settle(charge, price, usage, note)
        return runner.Done(result, usage, cost, served.model.name, served.deployment, trail)


def open_stream(svc: Services, key: KeyRecord, call: TranscribeCall) -> Awaitable[OpenTranscript]:
    """A streamed transcript: admit and hold, open the upstream (fallback only before the
    first byte); `_events` relays the rest."""
    return runner.open_stream(svc, TRANSCRIPTION, key, call, _events)


async def _events(
    svc: Services,
    call: TranscribeCall,
    served: Attempt,
    charge: Charge,
    upstream: UpstreamStream,
    first: bytes,
    chunks: AsyncIterator[bytes],
) -> AsyncGenerator[dict[str, Any] | FaregateError, None]:
    """Transcript events as they come; settles exactly once however the stream ends: the
    file's seconds (the input was consumed whole, as a broken chat stream bills its whole
    prompt), or the tokens reported, else counted from the text received."""
    decoder = cast(TranscriptionProtocol, served.deployment.adapter).transcript_decoder(call)
    note: str | None = "the client went away mid-stream; the whole input was billed"
    try:
        chunk = first
        while chunk:
            for event in decoder.feed(chunk):
                yield event
            chunk = await anext(chunks, b"")
        for event in decoder.finish():
            yield event
        note = None
    except UpstreamError as exc:
        note = f"the stream broke after the first byte ({exc.failure.value}): {exc.message}"
        svc.balancer.broke_mid_stream(served, exc)
        yield exc.to_client_mid_stream()
    finally:
        price = served.model.price
        result = Transcript(b"", "", decoder.text, None, decoder.usage if decoder.done else None)
        usage = usage_at(price, call, result)
        svc.balancer.used(served, usage.prompt_tokens, usage.completion_tokens)
        if note is None and usage.estimated:
            note = "estimated: the provider reported no usage"
        await runner.settle(charge, price, usage, note)
        upstream.close()
