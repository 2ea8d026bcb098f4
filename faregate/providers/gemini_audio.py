"""Gemini audio: speech generation (`streamGenerateContent` with audio output and a speech
config, its PCM encoded into the asked format as it arrives) and transcription (the audio as
inline data to a Gemini model)."""

from __future__ import annotations

import base64
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
    delta_event,
    done_event,
    render_transcript,
)
from faregate.providers.audio_encode import Encoder, encoder
from faregate.providers.base import Credentials, UpstreamRequest, reply_object
from faregate.providers.gemini import classify
from faregate.providers.sse import SSEDecoder

GEMINI_VOICES = (
    "Achernar",
    "Achird",
    "Algenib",
    "Algieba",
    "Alnilam",
    "Aoede",
    "Autonoe",
    "Callirrhoe",
    "Charon",
    "Despina",
    "Enceladus",
    "Erinome",
    "Fenrir",
    "Gacrux",
    "Iapetus",
    "Kore",
    "Laomedeia",
    "Leda",
    "Orus",
    "Puck",
    "Pulcherrima",
    "Rasalgethi",
    "Sadachbia",
    "Sadaltager",
    "Schedar",
    "Sulafat",
    "Umbriel",
    "Vindemiatrix",
    "Zephyr",
    "Zubenelgenubi",
)
"""Gemini's prebuilt voices."""

OPENAI_TO_GEMINI = dict(
    zip(
        OPENAI_VOICES,
        (
            "Zephyr",
            "Puck",
            "Charon",
            "Orus",
            "Aoede",
            "Fenrir",
            "Leda",
            "Callirrhoe",
            "Autonoe",
            "Enceladus",
            "Iapetus",
            "Despina",
            "Umbriel",
        ),
        strict=True,
    )
)
"""OpenAI's voice names, each spoken by one Gemini voice."""

_BY_LOWER = {v.lower(): v for v in GEMINI_VOICES}
PCM_RATE = 24_000
"""Gemini's speech: signed 16-bit little-endian mono PCM at this rate unless its type says."""


def _headers(creds: Credentials) -> dict[str, str]:
    headers = {"content-type": "application/json", **creds.headers}
    if creds.api_key:
        headers["x-goog-api-key"] = creds.api_key
    return headers


def _path(upstream_model: str, method: str) -> str:
    return f"/v1beta/models/{upstream_model.removeprefix('models/')}:{method}"


def gemini_voice(voice: str) -> str | None:
    """The Gemini voice for `voice`: a Gemini name in any case, or an OpenAI name mapped."""
    return OPENAI_TO_GEMINI.get(voice) or _BY_LOWER.get(voice.lower())


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict) or not isinstance(meta.get("promptTokenCount"), int):
        return None
    out = meta.get("candidatesTokenCount")
    return Usage(meta["promptTokenCount"], out if isinstance(out, int) else 0)


def _rate(mime: str) -> int:
    for param in mime.split(";"):
        name, _, value = param.strip().partition("=")
        if name == "rate" and value.isdigit():
            return int(value)
    return PCM_RATE


def _instruction(call: TranscribeCall) -> str:
    if call.task == "translate":
        text = "Translate the speech in this audio into English. Answer with the English text only."
    else:
        text = "Transcribe the speech in this audio verbatim. Answer with the transcript only."
        if call.language:
            text += f" The speech is in the language '{call.language}'."
    if call.prompt:
        text += f" Context from earlier audio: {call.prompt}"
    return text


class GeminiTranscription:
    """Speech to text through `generateContent`: an instruction and the audio inline."""

    name = "gemini"

    def build_transcription_request(
        self, call: TranscribeCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        audio = {"mimeType": call.media_type, "data": base64.b64encode(call.audio).decode()}
        body: dict[str, Any] = {
            "contents": [
                {"role": "user", "parts": [{"text": _instruction(call)}, {"inlineData": audio}]}
            ]
        }
        if call.temperature is not None:
            body["generationConfig"] = {"temperature": call.temperature}
        method = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        return UpstreamRequest(_path(upstream_model, method), _headers(creds), orjson.dumps(body))

    def parse_transcription(self, body: bytes, call: TranscribeCall) -> Transcript:
        data = reply_object(body, lambda d: "candidates" in d)
        candidates = data.get("candidates") or [{}]
        parts = ((candidates[0] or {}).get("content") or {}).get("parts") or []
        text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str)).strip()
        rendered, content_type = render_transcript(text, call.duration_ms, call)
        return Transcript(rendered, content_type, text, None, _usage(data.get("usageMetadata")))

    def transcript_decoder(self, call: TranscribeCall) -> _TranscriptEvents:
        return _TranscriptEvents()

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return classify(status, headers, body)


def _events(chunk: bytes, sse: SSEDecoder) -> list[dict[str, Any]]:
    """The JSON objects of the SSE events in `chunk`; an error event raises."""
    out = []
    for _, data, _ in sse.feed(chunk):
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        if "error" in obj:
            message = str((obj.get("error") or {}).get("message", "stream error"))
            raise UpstreamError(FailureClass.TRANSIENT, message, status=200)
        out.append(obj)
    return out


class _TranscriptEvents:
    """Gemini's streamed text as OpenAI transcript events: a delta per chunk of text, and
    the `done` event (with the usage Gemini reported) once the stream has ended."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self.text = ""
        self.usage: Usage | None = None
        self.done = False
        self._finished = False

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        events = []
        for obj in _events(chunk, self._sse):
            self.usage = _usage(obj.get("usageMetadata")) or self.usage
            for cand in obj.get("candidates") or ():
                self._finished = self._finished or bool((cand or {}).get("finishReason"))
                for part in ((cand or {}).get("content") or {}).get("parts") or ():
                    text = part.get("text") if isinstance(part, dict) else None
                    if isinstance(text, str) and text:
                        piece = text.lstrip() if not self.text else text
                        self.text += piece
                        events.append(delta_event(piece))
        return events

    def finish(self) -> list[dict[str, Any]]:
        if not self._finished:
            raise UpstreamError(
                FailureClass.TRANSIENT, "the stream ended before it was complete", status=200
            )
        self.done = True
        self.text = self.text.strip()
        return [done_event(self.text, self.usage)]


class _SpeechDecoder:
    """SSE chunks of base64 PCM, encoded into the asked format as they come."""

    def __init__(self, fmt: str) -> None:
        self._fmt = fmt
        self._sse = SSEDecoder()
        self._encoder: Encoder | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        for obj in _events(chunk, self._sse):
            self.usage = _usage(obj.get("usageMetadata")) or self.usage
            for cand in obj.get("candidates") or ():
                for part in ((cand or {}).get("content") or {}).get("parts") or ():
                    inline = part.get("inlineData") if isinstance(part, dict) else None
                    if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                        if self._encoder is None:
                            rate = _rate(str(inline.get("mimeType") or ""))
                            self._encoder = encoder(self._fmt, rate)
                        out += self._encoder.feed(base64.b64decode(inline["data"]))
        return bytes(out)

    def finish(self) -> bytes:
        if self._encoder is None:
            raise UpstreamError(
                FailureClass.TRANSIENT, "the provider's speech stream had no audio", status=200
            )
        return self._encoder.finish()

    def close(self) -> None:
        if self._encoder is not None:
            self._encoder.close()


class GeminiSpeech:
    """Text to speech through `streamGenerateContent?alt=sse` with audio output."""

    name = "gemini"
    formats = SPEECH_FORMATS

    def accepts_voice(self, voice: str) -> bool:
        return gemini_voice(voice) is not None

    def build_speech_request(
        self, call: SpeechCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        text = call.input
        if call.instructions:
            text = f"{call.instructions.strip()}: {text}"
        voice = {"prebuiltVoiceConfig": {"voiceName": gemini_voice(call.voice) or "Kore"}}
        body = {
            "contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {
                "responseModalities": ["AUDIO"],
                "speechConfig": {"voiceConfig": voice},
            },
        }
        path = _path(upstream_model, "streamGenerateContent?alt=sse")
        return UpstreamRequest(path, _headers(creds), orjson.dumps(body))

    def speech_decoder(self, call: SpeechCall) -> _SpeechDecoder:
        return _SpeechDecoder(call.response_format)

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return classify(status, headers, body)
