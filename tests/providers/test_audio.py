"""Audio adapters: OpenAI's form and transcript, Gemini's voices and streamed transcript, the
transcript formats rendered for text-only upstreams, and PCM encoded into every format."""

from __future__ import annotations

import asyncio
import base64
import io
import math
import struct
from typing import Any

import av
import orjson
import pytest

from faregate.errors import UpstreamError
from faregate.http.multipart import FormLimits, parse_form
from faregate.providers.audio import TranscribeCall, render_transcript
from faregate.providers.audio_encode import STREAMING_SIZE, encoder, wav_header
from faregate.providers.base import Credentials
from faregate.providers.gemini_audio import GeminiSpeech, GeminiTranscription, gemini_voice
from faregate.providers.openai_audio import OpenAITranscription

CREDS = Credentials("http://up.test/v1", "sk-up")


def call(**kw: Any) -> TranscribeCall:
    base: dict[str, Any] = {
        "model": "m",
        "request_id": "r",
        "audio": b"RIFFdata",
        "filename": 'my "talk".wav',
        "media_type": "audio/wav",
        "container": "wav",
        "duration_ms": 3200,
    }
    return TranscribeCall(**{**base, **kw})


async def _form(content_type: str, body: bytes) -> dict[str, Any]:
    async def chunks() -> Any:
        yield body

    form = await parse_form(content_type, chunks(), FormLimits(max_body=1 << 20))
    try:
        upload = form.file("file")
        assert upload is not None
        fields = {k: v for k, v in form.items if isinstance(v, str)}
        return {**fields, "file": (upload.filename, upload.declared_type, await upload.read())}
    finally:
        form.close()


def test_openai_transcription_is_sent_as_a_form() -> None:
    c = call(language="en", prompt="Before.", temperature=0.2, granularities=("word",))
    c.response_format = "verbose_json"
    req = OpenAITranscription().build_transcription_request(c, "whisper-1", CREDS)
    assert req.path == "/audio/transcriptions"
    assert req.headers["authorization"] == "Bearer sk-up"
    form = asyncio.run(_form(req.headers["content-type"], req.body))
    assert form == {
        "model": "whisper-1",
        "response_format": "verbose_json",
        "prompt": "Before.",
        "temperature": "0.2",
        "language": "en",
        "timestamp_granularities[]": "word",
        "file": ("my %22talk%22.wav", "audio/wav", b"RIFFdata"),
    }
    translated = call(task="translate", language="fr")
    req = OpenAITranscription().build_transcription_request(translated, "whisper-1", CREDS)
    assert req.path == "/audio/translations" and b'name="language"' not in req.body


def test_openai_transcripts_report_their_duration_or_tokens() -> None:
    adapter = OpenAITranscription()
    verbose = adapter.parse_transcription(
        orjson.dumps({"text": "hi", "duration": 3.21}), call(response_format="verbose_json")
    )
    assert (verbose.text, verbose.duration_ms, verbose.usage) == ("hi", 3210, None)
    seconds = adapter.parse_transcription(
        orjson.dumps({"text": "hi", "usage": {"type": "duration", "seconds": 4}}), call()
    )
    assert seconds.duration_ms == 4000
    tokens = adapter.parse_transcription(
        orjson.dumps(
            {"text": "hi", "usage": {"type": "tokens", "input_tokens": 7, "output_tokens": 2}}
        ),
        call(),
    )
    assert tokens.duration_ms is None and tokens.usage is not None
    assert (tokens.usage.prompt_tokens, tokens.usage.completion_tokens) == (7, 2)
    text = adapter.parse_transcription(b"plain words", call(response_format="text"))
    assert (text.body, text.content_type, text.text) == (
        b"plain words",
        "text/plain; charset=utf-8",
        "plain words",
    )
    with pytest.raises(UpstreamError):
        adapter.parse_transcription(b"<html>", call())


def test_the_openai_transcript_stream_keeps_the_done_events_usage() -> None:
    decoder = OpenAITranscription().transcript_decoder(call(stream=True))
    delta = {"type": "transcript.text.delta", "delta": "Hi"}
    done = {
        "type": "transcript.text.done",
        "text": "Hi.",
        "usage": {"type": "tokens", "input_tokens": 5, "output_tokens": 1},
    }
    raw = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in (delta, done))
    assert decoder.feed(raw[:10]) == []
    assert decoder.feed(raw[10:]) == [delta, done]
    assert decoder.done and decoder.text == "Hi." and decoder.finish() == []
    assert decoder.usage is not None and decoder.usage.prompt_tokens == 5
    cut = OpenAITranscription().transcript_decoder(call(stream=True))
    cut.feed(b"data: " + orjson.dumps(delta) + b"\n\n")
    with pytest.raises(UpstreamError):
        cut.finish()


@pytest.mark.parametrize(
    ("fmt", "start"),
    [
        ("json", b'{"text":"one two"}'),
        ("text", b"one two"),
        ("srt", b"1\n00:00:00,000 --> 00:00:03,200\none two\n\n"),
        ("vtt", b"WEBVTT\n\n00:00:00.000 --> 00:00:03.200\none two\n\n"),
    ],
)
def test_transcripts_rendered_for_a_text_only_upstream(fmt: str, start: bytes) -> None:
    body, _ = render_transcript("one two", 3200, call(response_format=fmt))
    assert body == start


def test_verbose_json_spreads_words_over_the_audio() -> None:
    c = call(response_format="verbose_json", granularities=("word",), task="translate")
    body = orjson.loads(render_transcript("one two", 3200, c)[0])
    assert body["task"] == "translate" and body["duration"] == 3.2
    assert body["words"] == [
        {"word": "one", "start": 0.0, "end": 1.6},
        {"word": "two", "start": 1.6, "end": 3.2},
    ]
    assert "segments" not in body


def test_gemini_voices_and_transcription_request() -> None:
    assert gemini_voice("alloy") == "Zephyr" and gemini_voice("PUCK") == "Puck"
    assert gemini_voice("nobody") is None
    assert GeminiSpeech().accepts_voice("kore") and not GeminiSpeech().accepts_voice("x")
    c = call(task="translate", prompt="Earlier.", stream=True)
    req = GeminiTranscription().build_transcription_request(c, "models/gemini-2.5-flash", CREDS)
    assert req.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert req.headers["x-goog-api-key"] == "sk-up"
    parts = orjson.loads(req.body)["contents"][0]["parts"]
    assert "into English" in parts[0]["text"] and "Earlier." in parts[0]["text"]
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == b"RIFFdata"


def test_the_gemini_transcript_stream_becomes_transcript_events() -> None:
    decoder = GeminiTranscription().transcript_decoder(call(stream=True))
    frames = [
        {"candidates": [{"content": {"parts": [{"text": " Hello"}]}}]},
        {
            "candidates": [{"content": {"parts": [{"text": " world."}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 64, "candidatesTokenCount": 3},
        },
    ]
    events = []
    for frame in frames:
        events += decoder.feed(b"data: " + orjson.dumps(frame) + b"\r\n\r\n")
    assert events == [
        {"type": "transcript.text.delta", "delta": "Hello"},
        {"type": "transcript.text.delta", "delta": " world."},
    ]
    assert decoder.finish() == [
        {
            "type": "transcript.text.done",
            "text": "Hello world.",
            "usage": {"type": "tokens", "input_tokens": 64, "output_tokens": 3, "total_tokens": 67},
        }
    ]


def _tone(seconds: float, rate: int = 24_000) -> bytes:
    n = round(seconds * rate)
    return struct.pack(f"<{n}h", *(int(8000 * math.sin(i / 10)) for i in range(n)))


@pytest.mark.parametrize(
    ("fmt", "container"), [("mp3", "mp3"), ("aac", "aac"), ("opus", "ogg"), ("flac", "flac")]
)
def test_pcm_is_encoded_chunk_by_chunk(fmt: str, container: str) -> None:
    enc = encoder(fmt, 24_000)
    pcm = _tone(1.0)
    pieces = [enc.feed(pcm[i : i + 4801]) for i in range(0, len(pcm), 4801)]  # odd splits
    pieces.append(enc.finish())
    assert sum(1 for p in pieces if p) > 1  # bytes leave before the end
    with av.open(io.BytesIO(b"".join(pieces))) as got:
        assert got.format.name == container
        samples = sum(f.samples for f in got.decode(audio=0))
        assert samples / got.streams.audio[0].rate == pytest.approx(1.0, abs=0.1)


def test_wav_and_pcm_need_no_encoder() -> None:
    header = wav_header(24_000)
    assert len(header) == 44 and header[4:8] == struct.pack("<I", STREAMING_SIZE)
    wav = encoder("wav", 24_000)
    assert wav.feed(b"\1\2") == header + b"\1\2" and wav.feed(b"\3\4") == b"\3\4"
    assert encoder("pcm", 24_000).feed(b"\1\2") == b"\1\2"
