"""Speech to text and text to speech through `POST /v1/chat/completions`: a model of an audio
kind answers a transcript (`{"text"}`) or raw audio, with its cost."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from faregate.api.audio import audio_call, parse_speech, speak, transcript_headers
from faregate.api.common import balancer_metadata, request_id, wants_metadata
from faregate.billing.types import KeyRecord
from faregate.errors import BadRequest
from faregate.http.request import Request
from faregate.http.responses import BytesStream, Response
from faregate.pipeline.services import Services
from faregate.pipeline.transcription import transcribe


def _audio_input(body: dict[str, Any]) -> bytes:
    """`input_audio`: `{"data": base64, "format": "wav"}` -> its bytes (the format is read
    from the bytes themselves)."""
    value = body.get("input_audio")
    if not isinstance(value, dict):
        raise BadRequest(
            'Missing required parameter: \'input_audio\' ({"data": base64, "format": ...}).',
            code="missing_input_audio",
            param="input_audio",
        )
    data, fmt = value.get("data"), value.get("format") or "wav"
    if not isinstance(data, str) or not isinstance(fmt, str):
        raise BadRequest(
            "'input_audio.data' must be base64 text and 'input_audio.format' a format name.",
            code="invalid_value",
            param="input_audio",
        )
    try:
        raw = base64.b64decode(
            data.split(",", 1)[-1] if data.startswith("data:") else data, validate=True
        )
    except (binascii.Error, ValueError):
        raise BadRequest(
            "'input_audio.data' is not valid base64.", code="invalid_base64", param="input_audio"
        ) from None
    return raw


async def transcription_surface(
    svc: Services, req: Request, body: dict[str, Any], key: KeyRecord
) -> Response:
    """`{"model", "input_audio", "language"?, "prompt"?}` -> `{"text": ...}`; with the
    `_balancer` opt-in, `{"data": {...}, "_balancer": {..., "audio_seconds"}}`."""
    rid = request_id()
    call = await audio_call(svc, _audio_input(body), rid, str(body.get("model")), "input_audio")
    language, prompt = body.get("language"), body.get("prompt")
    call.language = language if isinstance(language, str) and language else None
    call.prompt = prompt if isinstance(prompt, str) and prompt else None
    done = await transcribe(svc, key, call)
    reply: dict[str, Any] = {"text": done.result.text}
    if wants_metadata(req):
        meta = balancer_metadata(svc, done.model, done.cost, done.usage, False)
        units = dict(done.usage.units)
        if "audio_ms" in units:
            meta["audio_seconds"] = units["audio_ms"] / 1000
        reply = {"data": reply, "_balancer": meta}
    return Response.json(reply, 200, transcript_headers(svc, rid, done))


async def speech_surface(
    svc: Services, req: Request, body: dict[str, Any], key: KeyRecord
) -> BytesStream:
    """`{"model", "input", "voice", "response_format"}` -> the audio, streamed, its cost in
    the `X-Balancer-*` and `x-faregate-*` headers."""
    return await speak(svc, key, parse_speech(svc, body, request_id()))
