"""Text to speech on the runner: the hold on the input's worst case, and the relay that
forwards the audio chunk by chunk as the upstream produces it and settles exactly once."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import cast

from faregate import tokens
from faregate.billing.charge import Charge
from faregate.billing.pricing import worst_case
from faregate.billing.types import KeyRecord, Price, Usage
from faregate.errors import BadRequest, FaregateError, UpstreamError
from faregate.kinds import Kind
from faregate.pipeline import runner
from faregate.pipeline.services import Services
from faregate.providers.audio import SpeechCall, SpeechProtocol
from faregate.providers.base import Adapter, Credentials, UpstreamRequest
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import ModelEntry
from faregate.upstream.base import UpstreamStream

OpenSpeech = runner.OpenStream[bytes]

CUT_NOTE = (
    "the stream broke after the first byte ({why}); the input was billed in full, as a"
    " broken chat stream bills its whole prompt"
)


def _text(call: SpeechCall) -> str:
    return call.input + (call.instructions or "")


def _worst(entry: ModelEntry, call: SpeechCall) -> int:
    price = entry.price
    if price.characters is not None:
        return worst_case(price, units=(("characters", len(call.input)),))
    return worst_case(price, len(_text(call).encode()) + 16, entry.max_output_tokens)


def hold_amount(chain: list[ModelEntry], call: SpeechCall) -> int:
    """The worst case over the model and its fallbacks: every character of the input, or
    (for a model priced per token) its byte bound and every output token."""
    return max(_worst(entry, call) for entry in chain)


def usage_at(price: Price, call: SpeechCall, reported: Usage | None) -> Usage:
    """Every character of the input when the price sets `characters`; tokens as reported,
    else counted (the input) and estimated (the speech, one token per input token)."""
    if price.characters is not None:
        base = reported or Usage(0, 0)
        units = (("characters", len(call.input)),)
        return Usage(base.prompt_tokens, base.completion_tokens, units=units)
    if reported is not None:
        return reported
    counted = tokens.count_text(_text(call))
    return Usage(counted, tokens.count_text(call.input), estimated=True)


def _check(entry: ModelEntry, call: SpeechCall) -> None:
    """Every deployment of the model must know the voice and produce the format."""
    adapters = [cast(SpeechProtocol, dep.adapter) for dep in entry.deployments]
    if not any(a.accepts_voice(call.voice) for a in adapters):
        raise BadRequest(
            f"Unknown voice '{call.voice}' for the model '{call.model}'.",
            code="invalid_voice",
            param="voice",
        )
    for adapter in adapters:
        if call.response_format not in adapter.formats:
            raise BadRequest(
                f"The model '{call.model}' cannot produce '{call.response_format}'; its upstream"
                f" produces {', '.join(adapter.formats)}.",
                code="unsupported_format",
                param="response_format",
            )


async def _request(
    svc: Services, call: SpeechCall, attempt: Attempt
) -> tuple[UpstreamRequest, Credentials]:
    dep = attempt.deployment
    creds = dep.creds(attempt.key)
    adapter = cast(SpeechProtocol, dep.adapter)
    return adapter.build_speech_request(call, dep.upstream_model, creds), creds


def _no_parse(adapter: Adapter, body: bytes, call: SpeechCall) -> bytes:
    return body  # speech is only ever streamed: `_audio` reads it, never the runner's parse


def _characters(call: SpeechCall, _: bytes) -> Usage:
    # Speech is only ever streamed: `_audio` settles at the served model's price.
    return Usage(0, 0, units=(("characters", len(call.input)),))


SPEECH: runner.KindSpec[SpeechCall, bytes] = runner.KindSpec(
    kind=Kind.AUDIO_SPEECH,
    hold=hold_amount,
    request=_request,
    parse=_no_parse,
    usage=_characters,
    check=_check,
)


def open_stream(svc: Services, key: KeyRecord, call: SpeechCall) -> Awaitable[OpenSpeech]:
    """Admit and hold, open the upstream (fallback only before the first byte); `_audio`
    relays the rest."""
    return runner.open_stream(svc, SPEECH, key, call, _audio)


async def _audio(
    svc: Services,
    call: SpeechCall,
    served: Attempt,
    charge: Charge,
    upstream: UpstreamStream,
    first: bytes,
    chunks: AsyncIterator[bytes],
) -> AsyncGenerator[bytes | FaregateError, None]:
    """Audio bytes as the upstream produces them (encoded where the upstream sends PCM);
    settles exactly once however the stream ends."""
    decoder = cast(SpeechProtocol, served.deployment.adapter).speech_decoder(call)
    note: str | None = CUT_NOTE.format(why="the client went away")
    try:
        chunk = first
        while chunk:
            out = decoder.feed(chunk)
            if out:
                yield out
            chunk = await anext(chunks, b"")
        tail = decoder.finish()
        if tail:
            yield tail
        note = None
    except UpstreamError as exc:
        note = CUT_NOTE.format(why=f"{exc.failure.value}: {exc.message}")
        svc.balancer.broke_mid_stream(served, exc)
        yield exc.to_client_mid_stream()
    finally:
        decoder.close()
        usage = usage_at(served.model.price, call, decoder.usage)
        svc.balancer.used(served, usage.prompt_tokens, usage.completion_tokens)
        await runner.settle(charge, served.model.price, usage, note)
        upstream.close()
