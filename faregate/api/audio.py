"""`POST /v1/audio/transcriptions`, `/v1/audio/translations` and `/v1/audio/speech`: OpenAI's
audio API to clients."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import orjson

from faregate.api.common import (
    authenticate,
    cost_headers,
    form_body,
    json_body,
    request_id,
    routing_headers,
)
from faregate.api.envelopes import openai_body
from faregate.billing.pricing import cost_of
from faregate.billing.types import KeyRecord
from faregate.errors import BadRequest, FaregateError, PayloadTooLarge
from faregate.http.multipart import Form
from faregate.http.request import Request
from faregate.http.responses import (
    SSE_HEADERS,
    BytesStream,
    Response,
    StreamAborted,
    StreamResponse,
    header_list,
)
from faregate.pipeline import speech
from faregate.pipeline.audio_probe import probe
from faregate.pipeline.services import Services
from faregate.pipeline.transcription import OpenTranscript, Transcribed, transcribe
from faregate.pipeline.transcription import open_stream as open_transcript
from faregate.providers.audio import (
    SPEECH_FORMATS,
    SPEECH_TYPES,
    TRANSCRIPT_FORMATS,
    SpeechCall,
    TranscribeCall,
)

GRANULARITIES = ("word", "segment")


def _missing(name: str) -> BadRequest:
    return BadRequest(f"Missing required parameter: '{name}'.", code=f"missing_{name}", param=name)


def _invalid(message: str, param: str) -> BadRequest:
    return BadRequest(message, code="invalid_value", param=param)


def _choice(value: str | None, choices: tuple[str, ...], default: str, param: str) -> str:
    if value is None or value == "":
        return default
    if value not in choices:
        raise _invalid(f"'{param}' must be one of {', '.join(choices)}; got '{value}'.", param)
    return value


def _number(value: Any, low: float, high: float, param: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not low <= number <= high:
        raise _invalid(f"'{param}' must be a number from {low:g} to {high:g}.", param)
    return number


async def audio_call(
    svc: Services, data: bytes, rid: str, model: str, param: str = "file"
) -> TranscribeCall:
    """A speech-to-text call on `data`: empty, over the size or duration cap (413), or not
    readable as audio (400) is refused before anything is held."""
    caps = svc.config.audio
    if not data:
        raise BadRequest("The audio file is empty.", code="empty_file", param=param)
    if len(data) > caps.max_file_bytes:
        raise PayloadTooLarge(
            f"The audio file is {len(data)} bytes; the limit is {caps.max_file_bytes}.",
            code="audio_too_large",
            param=param,
        )
    cap_ms = math.ceil(caps.max_duration_seconds * 1000)
    info = await probe(data, param, stop_after_ms=cap_ms)
    if info.duration_ms > cap_ms:
        raise PayloadTooLarge(
            f"The audio is {info.duration_ms / 1000:g} s long; the limit is"
            f" {caps.max_duration_seconds:g} s.",
            code="audio_too_long",
            param=param,
        )
    return TranscribeCall(
        model=model,
        request_id=rid,
        audio=data,
        filename=f"audio.{info.container}",  # the client's name never goes upstream
        media_type=info.media_type,
        container=info.container,
        duration_ms=info.duration_ms,
    )


async def parse_transcription(svc: Services, form: Form, rid: str, task: str) -> TranscribeCall:
    """The form the `openai` SDK sends: `file`, `model` and the options of `task`."""
    model = form.get("model")
    if not model:
        raise _missing("model")
    upload = form.file("file")
    if upload is None:
        raise _missing("file")
    fmt = _choice(form.get("response_format"), TRANSCRIPT_FORMATS, "json", "response_format")
    temperature = _number(form.get("temperature"), 0, 1, "temperature")
    granularities = tuple(dict.fromkeys(form.getall("timestamp_granularities")))
    for value in granularities:
        _choice(value, GRANULARITIES, "segment", "timestamp_granularities[]")
    if granularities and fmt != "verbose_json":
        raise _invalid(
            "'timestamp_granularities[]' needs response_format 'verbose_json'.",
            "timestamp_granularities[]",
        )
    stream = (form.get("stream") or "false").lower()
    if stream not in ("true", "false", "1", "0"):
        raise _invalid("'stream' must be true or false.", "stream")
    if stream in ("true", "1") and fmt not in ("json", "text"):
        raise _invalid("A streamed transcript takes response_format 'json' or 'text'.", "stream")
    call = await audio_call(svc, await upload.read(), rid, model)
    call.task = task
    call.response_format = fmt
    call.language = form.get("language") or None if task == "transcribe" else None
    call.prompt = form.get("prompt") or None
    call.temperature = temperature
    call.granularities = granularities
    call.stream = stream in ("true", "1")
    return call


def transcript_headers(svc: Services, rid: str, done: Transcribed) -> dict[str, str]:
    return {**cost_headers(svc, rid, done.model, done.cost), **routing_headers(done)}


async def _transcript_events(stream: OpenTranscript) -> AsyncIterator[bytes]:
    """The events as SSE; a break ends the stream with an `error` event."""
    async with aclosing(stream.events) as events:
        async for item in events:
            if isinstance(item, FaregateError):
                body = openai_body(item)
                yield b"data: " + orjson.dumps({"type": "error", **body}) + b"\n\n"
                return
            yield b"data: " + orjson.dumps(item) + b"\n\n"


def transcription_handler(svc: Services, task: str) -> Callable[[Request], Any]:
    async def handle(req: Request) -> Response | StreamResponse:
        rid = request_id()
        key = await authenticate(svc, req)
        call = await parse_transcription(svc, await form_body(svc, req), rid, task)
        if call.stream:
            opened = await open_transcript(svc, key, call)
            extra = {**cost_headers(svc, rid, opened.model, None), **routing_headers(opened)}
            return StreamResponse(_transcript_events(opened), 200, SSE_HEADERS + header_list(extra))
        done = await transcribe(svc, key, call)
        content_type = (b"content-type", done.result.content_type.encode())
        headers = header_list(transcript_headers(svc, rid, done))
        return Response(done.result.body, 200, [content_type, *headers])

    return handle


def parse_speech(svc: Services, body: dict[str, Any], rid: str) -> SpeechCall:
    """`model`, `input`, `voice`, `response_format`, `speed`, `instructions`."""
    for name in ("model", "input", "voice"):
        if name not in body:
            raise _missing(name)
    model, text, voice = body["model"], body["input"], body["voice"]
    if not isinstance(model, str) or not model:
        raise _invalid("'model' must be a model name.", "model")
    if not isinstance(text, str):
        raise _invalid("'input' must be a string.", "input")
    if not text.strip():
        raise BadRequest("'input' must not be empty.", code="empty_input", param="input")
    limit = svc.config.audio.max_input_characters
    if len(text) > limit:
        raise BadRequest(
            f"'input' is {len(text)} characters long; the limit is {limit}.",
            code="input_too_long",
            param="input",
        )
    if not isinstance(voice, str) or not voice:
        raise BadRequest("'voice' must be a voice name.", code="invalid_voice", param="voice")
    fmt = body.get("response_format")
    if fmt is not None and not isinstance(fmt, str):
        raise _invalid("'response_format' must be a string.", "response_format")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _invalid("'instructions' must be a string.", "instructions")
    if body.get("stream_format") not in (None, "audio"):
        raise _invalid("'stream_format' must be 'audio'.", "stream_format")
    return SpeechCall(
        model=model,
        request_id=rid,
        input=text,
        voice=voice,
        response_format=_choice(fmt, SPEECH_FORMATS, "mp3", "response_format"),
        speed=_number(body.get("speed"), 0.25, 4.0, "speed"),
        instructions=instructions or None,
    )


async def _audio_bytes(stream: speech.OpenSpeech) -> AsyncIterator[bytes]:
    async with aclosing(stream.events) as events:
        async for item in events:
            if isinstance(item, FaregateError):
                raise StreamAborted(item.message)  # the audio ends incomplete
            yield item


async def speak(svc: Services, key: KeyRecord, call: SpeechCall) -> BytesStream:
    """The speech streamed as it is produced. Its cost goes in the headers when it is known
    before the first byte (a model priced per character: every character of the input)."""
    stream = await speech.open_stream(svc, key, call)
    served = svc.catalog.models.get(stream.model)
    cost = None
    price = served.price if served is not None else None
    if price is not None and price.characters is not None and not price.input + price.output:
        cost = cost_of(price, speech.usage_at(price, call, None))
    response = BytesStream(_audio_bytes(stream), SPEECH_TYPES[call.response_format])
    extra = {**cost_headers(svc, call.request_id, stream.model, cost), **routing_headers(stream)}
    response.headers = [*response.headers, *header_list(extra)]
    return response


def speech_handler(svc: Services) -> Callable[[Request], Any]:
    async def handle(req: Request) -> BytesStream:
        rid = request_id()
        key = await authenticate(svc, req)
        call = parse_speech(svc, await json_body(svc, req), rid)
        return await speak(svc, key, call)

    return handle
