"""Audio calls inside the gateway (speech to text, text to speech), their results, and what
an audio adapter provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from faregate.billing.types import Usage
from faregate.errors import UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest

TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
"""The `response_format` values of `/v1/audio/transcriptions` and `/translations`."""

SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
"""The `response_format` values of `/v1/audio/speech`."""

SPEECH_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
"""The `Content-Type` of speech in each format."""

OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "cedar",
    "coral",
    "echo",
    "fable",
    "marin",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
)
"""The voices of OpenAI's speech models."""


@dataclass(slots=True)
class TranscribeCall:
    """One speech-to-text request: the uploaded audio (already probed) and its options.
    `task` is `transcribe` or `translate` (to English)."""

    model: str
    request_id: str
    audio: bytes
    filename: str
    media_type: str
    container: str
    duration_ms: int
    task: str = "transcribe"
    response_format: str = "json"
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    granularities: tuple[str, ...] = ()
    stream: bool = False


@dataclass(slots=True)
class Transcript:
    """A transcript as the client gets it (`body` of `content_type`), its text, and what the
    upstream reported: the audio's duration and token usage, when it did."""

    body: bytes
    content_type: str
    text: str
    duration_ms: int | None = None
    usage: Usage | None = None


@dataclass(slots=True)
class SpeechCall:
    """One text-to-speech request."""

    model: str
    request_id: str
    input: str
    voice: str
    response_format: str = "mp3"
    speed: float | None = None
    instructions: str | None = None


class AudioDecoder(Protocol):
    """Turns an upstream's speech response, chunk by chunk, into audio bytes of the asked
    format; `usage` is what the upstream reported, once it has."""

    usage: Usage | None

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes:
        """What is left once the upstream ended (an encoder's last frames)."""
        ...

    def close(self) -> None: ...


class TranscriptDecoder(Protocol):
    """Turns an upstream's streamed transcript, chunk by chunk, into OpenAI's transcript
    events (`transcript.text.delta`, then one `transcript.text.done`); what the upstream
    reported is kept as it arrives."""

    text: str
    usage: Usage | None
    done: bool

    def feed(self, chunk: bytes) -> list[dict[str, Any]]: ...

    def finish(self) -> list[dict[str, Any]]:
        """The events owed once the upstream ended (a `done` it does not send itself)."""
        ...


def delta_event(text: str) -> dict[str, Any]:
    return {"type": "transcript.text.delta", "delta": text}


def done_event(text: str, usage: Usage | None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "transcript.text.done", "text": text}
    if usage is not None:
        event["usage"] = {
            "type": "tokens",
            "input_tokens": usage.prompt_tokens,
            "output_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        }
    return event


class TranscriptionProtocol(Protocol):
    """An upstream speech-to-text wire protocol."""

    name: str

    def build_transcription_request(
        self, call: TranscribeCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest: ...

    def parse_transcription(self, body: bytes, call: TranscribeCall) -> Transcript: ...

    def transcript_decoder(self, call: TranscribeCall) -> TranscriptDecoder: ...

    def classify_error(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> UpstreamError: ...


class SpeechProtocol(Protocol):
    """An upstream text-to-speech wire protocol."""

    name: str
    formats: tuple[str, ...]
    """The `response_format` values this upstream can produce."""

    def accepts_voice(self, voice: str) -> bool: ...

    def build_speech_request(
        self, call: SpeechCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest: ...

    def speech_decoder(self, call: SpeechCall) -> AudioDecoder: ...

    def classify_error(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> UpstreamError: ...


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def render_transcript(text: str, duration_ms: int, call: TranscribeCall) -> tuple[bytes, str]:
    """A transcript in the client's `response_format`, for upstreams that answer text only:
    one segment spanning the whole audio (and its words spread evenly over it when asked)."""
    seconds = duration_ms / 1000
    fmt = call.response_format
    if fmt == "text":
        return text.encode(), "text/plain; charset=utf-8"
    if fmt == "srt":
        cue = f"1\n{_clock(0, ',')} --> {_clock(seconds, ',')}\n{text}\n\n"
        return cue.encode(), "text/plain; charset=utf-8"
    if fmt == "vtt":
        cue = f"WEBVTT\n\n{_clock(0, '.')} --> {_clock(seconds, '.')}\n{text}\n\n"
        return cue.encode(), "text/plain; charset=utf-8"
    if fmt != "verbose_json":
        return orjson.dumps({"text": text}), "application/json"
    body: dict[str, Any] = {
        "task": call.task,
        "language": call.language or "english",
        "duration": seconds,
        "text": text,
    }
    if "segment" in call.granularities or not call.granularities:
        body["segments"] = [
            {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": seconds,
                "text": text,
                "tokens": [],
                "temperature": call.temperature or 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
        ]
    if "word" in call.granularities:
        words = text.split()
        step = seconds / len(words) if words else 0.0
        body["words"] = [
            {"word": w, "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
            for i, w in enumerate(words)
        ]
    return orjson.dumps(body), "application/json"
