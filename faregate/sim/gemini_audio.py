"""Gemini audio in the simulator, on `generateContent` / `streamGenerateContent`: speech
(`responseModalities: ["AUDIO"]`: a tone as 24 kHz s16le PCM in `inlineData` parts, a tenth
of a second per streamed chunk) and transcription (an `inlineData` audio part: the transcript
of `audio_common.transcript_of`).

Usage: speech bills count_text of the prompt and 25 tokens per second of audio; a transcript
32 tokens per second of input audio plus the prompt's text, and count_text of the transcript.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from faregate.providers.gemini_audio import GEMINI_VOICES
from faregate.sim.audio_common import RATE, duration_of, pcm_pieces, speech_seconds, transcript_of
from faregate.sim.delivery import play_stream, send_json
from faregate.sim.faults import FaultScript
from faregate.sim.gemini_common import JSON_TYPE, invalid
from faregate.sim.gemini_generate import response_id
from faregate.tokens import count_text

PCM_TYPE = f"audio/L16;codec=pcm;rate={RATE}"
VOICES = {v.lower() for v in GEMINI_VOICES}


def _parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for content in body.get("contents") or ():
        if isinstance(content, dict):
            out += [p for p in content.get("parts") or () if isinstance(p, dict)]
    return out


def _text(parts: list[dict[str, Any]]) -> str:
    return " ".join(p["text"] for p in parts if isinstance(p.get("text"), str))


def _wants_audio(body: dict[str, Any]) -> bool:
    config = body.get("generationConfig") or {}
    modalities = config.get("responseModalities") or ()
    return any(str(m).upper() == "AUDIO" for m in modalities)


def _audio_part(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    for part in parts:
        inline = part.get("inlineData")
        if isinstance(inline, dict) and str(inline.get("mimeType", "")).startswith("audio/"):
            return inline
    return None


async def answer(
    request: web.Request, model: str, body: dict[str, Any], script: FaultScript, *, stream: bool
) -> web.StreamResponse | None:
    """The reply to an audio request, or None when the request is not about audio."""
    parts = _parts(body)
    if _wants_audio(body):
        return await _speech(request, model, body, parts, script, stream)
    audio = _audio_part(parts)
    if audio is not None:
        return await _transcript(request, model, parts, audio, script, stream)
    return None


def _usage(prompt: int, output: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
    }


async def _speech(
    request: web.Request,
    model: str,
    body: dict[str, Any],
    parts: list[dict[str, Any]],
    script: FaultScript,
    stream: bool,
) -> web.StreamResponse:
    text = _text(parts)
    if not text:
        return invalid("* GenerateContentRequest.contents: contents is not specified")
    speech = ((body.get("generationConfig") or {}).get("speechConfig") or {}).get("voiceConfig")
    voice = ((speech or {}).get("prebuiltVoiceConfig") or {}).get("voiceName")
    if voice is not None and str(voice).lower() not in VOICES:
        return invalid(f"Voice name {voice} is not supported.")
    seconds = speech_seconds(text)
    usage = _usage(count_text(text), math.ceil(seconds * 25))
    rid = response_id()

    def chunk(pcm: bytes, last: bool) -> dict[str, Any]:
        inline = {"mimeType": PCM_TYPE, "data": base64.b64encode(pcm).decode()}
        cand: dict[str, Any] = {"content": {"parts": [{"inlineData": inline}], "role": "model"}}
        if last:
            cand["finishReason"] = "STOP"
        out: dict[str, Any] = {"candidates": [cand], "modelVersion": model, "responseId": rid}
        if last and not script.no_usage:
            out["usageMetadata"] = usage
        return out

    if not stream:
        whole = b"".join(pcm_pieces(seconds))
        return await send_json(request, script, orjson.dumps(chunk(whole, True)))
    pieces = list(pcm_pieces(seconds))

    def frames() -> Iterator[tuple[bytes, bool]]:
        for i, pcm in enumerate(pieces):
            data = orjson.dumps(chunk(pcm, i == len(pieces) - 1))
            yield b"data: " + data + b"\r\n\r\n", True

    headers = {"Content-Type": "text/event-stream"}
    return await play_stream(request, script, headers, frames())


def _word_frames(payload: dict[str, Any]) -> Iterator[tuple[bytes, bool]]:
    """A streamed transcript: one frame per word, the last with finishReason and usage."""
    text = payload["candidates"][0]["content"]["parts"][0]["text"]
    words = text.split(" ")
    for i, word in enumerate(words):
        last = i == len(words) - 1
        cand: dict[str, Any] = {
            "content": {"parts": [{"text": word if i == 0 else " " + word}], "role": "model"}
        }
        frame: dict[str, Any] = {"candidates": [cand], "modelVersion": payload["modelVersion"]}
        if last:
            cand["finishReason"] = "STOP"
            if "usageMetadata" in payload:
                frame["usageMetadata"] = payload["usageMetadata"]
        yield b"data: " + orjson.dumps(frame) + b"\r\n\r\n", True


async def _transcript(
    request: web.Request,
    model: str,
    parts: list[dict[str, Any]],
    inline: dict[str, Any],
    script: FaultScript,
    stream: bool,
) -> web.StreamResponse:
    try:
        audio = base64.b64decode(str(inline.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        return invalid("Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES)")
    seconds = duration_of(audio)
    if seconds is None:
        return invalid("The audio file could not be processed.")
    text = transcript_of(audio, seconds)
    prompt = math.ceil(seconds * 32) + count_text(_text(parts))
    payload: dict[str, Any] = {
        "candidates": [
            {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}
        ],
        "modelVersion": model,
        "responseId": response_id(),
    }
    if not script.no_usage:
        payload["usageMetadata"] = _usage(prompt, count_text(text))
    if stream:
        return await play_stream(
            request, script, {"Content-Type": "text/event-stream"}, _word_frames(payload)
        )
    return await send_json(request, script, orjson.dumps(payload), partial_type=JSON_TYPE)
