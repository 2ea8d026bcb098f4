"""OpenAI's audio API (`/audio/transcriptions`, `/audio/translations`, `/audio/speech`), also
spoken by OpenAI-compatible audio servers."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from faregate.billing.types import Usage
from faregate.errors import FailureClass, UpstreamError
from faregate.providers.audio import (
    OPENAI_VOICES,
    SPEECH_FORMATS,
    SpeechCall,
    TranscribeCall,
    Transcript,
)
from faregate.providers.base import Credentials, UpstreamRequest, reply_object
from faregate.providers.openai import OpenAIChat
from faregate.providers.sse import SSEDecoder

_CHAT = OpenAIChat()


def _headers(creds: Credentials, content_type: str) -> dict[str, str]:
    headers = {"content-type": content_type, **creds.headers}
    if creds.api_key:
        headers["authorization"] = f"Bearer {creds.api_key}"
    return headers


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")


def multipart(
    fields: list[tuple[str, str]], file: tuple[str, str, str, bytes]
) -> tuple[str, bytes]:
    """A multipart/form-data body: (its content type, its bytes); `file` is (field, filename,
    media type, bytes)."""
    boundary = "faregate-" + secrets.token_hex(16)
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    field, filename, media_type, data = file
    out += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{_quoted(filename)}"\r\nContent-Type: {media_type}\r\n\r\n'
    ).encode()
    out += data + b"\r\n" + f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def _reported(data: dict[str, Any]) -> tuple[int | None, Usage | None]:
    """The audio's duration (ms) and token usage an OpenAI transcript reports, when it does."""
    duration = data.get("duration")
    usage = data.get("usage")
    tokens = None
    if isinstance(usage, dict):
        if usage.get("type") == "duration" and isinstance(usage.get("seconds"), int | float):
            duration = usage["seconds"]
        inp, out = usage.get("input_tokens"), usage.get("output_tokens")
        if isinstance(inp, int) and isinstance(out, int):
            tokens = Usage(inp, out)
    ms = round(duration * 1000) if isinstance(duration, int | float) and duration >= 0 else None
    return ms, tokens


class OpenAITranscription:
    """Speech to text: the audio file and options as a form, the transcript back unchanged."""

    name = "openai"

    def build_transcription_request(
        self, call: TranscribeCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        fields = [("model", upstream_model), ("response_format", call.response_format)]
        if call.prompt:
            fields.append(("prompt", call.prompt))
        if call.temperature is not None:
            fields.append(("temperature", repr(call.temperature)))
        if call.task == "transcribe":
            if call.language:
                fields.append(("language", call.language))
            fields += [("timestamp_granularities[]", g) for g in call.granularities]
        if call.stream:
            fields.append(("stream", "true"))
        content_type, body = multipart(fields, ("file", call.filename, call.media_type, call.audio))
        path = "/audio/translations" if call.task == "translate" else "/audio/transcriptions"
        return UpstreamRequest(path, _headers(creds, content_type), body)

    def parse_transcription(self, body: bytes, call: TranscribeCall) -> Transcript:
        if call.response_format not in ("json", "verbose_json"):
            text = body.decode("utf-8", "replace")
            return Transcript(body, "text/plain; charset=utf-8", text)
        data = reply_object(body, lambda d: isinstance(d.get("text"), str))
        duration, usage = _reported(data)
        return Transcript(body, "application/json", data["text"], duration, usage)

    def transcript_decoder(self, call: TranscribeCall) -> _TranscriptEvents:
        return _TranscriptEvents()

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return _CHAT.classify_error(status, headers, body)


class _TranscriptEvents:
    """OpenAI's transcript events, forwarded as they are; the `done` event's text and usage
    kept."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self.text = ""
        self.usage: Usage | None = None
        self.done = False

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for _, data, _ in self._sse.feed(chunk):
            if data == b"[DONE]":
                continue
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            if obj.get("type") == "error" or "error" in obj:
                err = obj.get("error")
                message = err.get("message") if isinstance(err, dict) else None
                raise UpstreamError(
                    FailureClass.TRANSIENT, str(message or "stream error"), status=200
                )
            kind = obj.get("type")
            if kind == "transcript.text.delta" and isinstance(obj.get("delta"), str):
                self.text += obj["delta"]
            elif kind == "transcript.text.done":
                self.done = True
                if isinstance(obj.get("text"), str):
                    self.text = obj["text"]
                self.usage = _reported(obj)[1]
            events.append(obj)
        return events

    def finish(self) -> list[dict[str, Any]]:
        if not self.done:
            raise UpstreamError(
                FailureClass.TRANSIENT, "the stream ended before it was complete", status=200
            )
        return []


class _Passthrough:
    """OpenAI sends speech in the asked format already: bytes go out as they come."""

    usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


class OpenAISpeech:
    """Text to speech: a JSON request, the audio streamed back in the asked format."""

    name = "openai"
    formats = SPEECH_FORMATS

    def accepts_voice(self, voice: str) -> bool:
        return voice in OPENAI_VOICES

    def build_speech_request(
        self, call: SpeechCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        body: dict[str, Any] = {
            "model": upstream_model,
            "input": call.input,
            "voice": call.voice,
            "response_format": call.response_format,
        }
        if call.speed is not None:
            body["speed"] = call.speed
        if call.instructions:
            body["instructions"] = call.instructions
        return UpstreamRequest(
            "/audio/speech", _headers(creds, "application/json"), orjson.dumps(body)
        )

    def speech_decoder(self, call: SpeechCall) -> _Passthrough:
        return _Passthrough()

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return _CHAT.classify_error(status, headers, body)
