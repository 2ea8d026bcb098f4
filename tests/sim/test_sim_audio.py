"""The simulator's audio: OpenAI's routes driven by the openai SDK, Gemini's speech and
transcription, real audio of the right length, deterministic transcripts, faults."""

from __future__ import annotations

import base64
import io
import wave

import aiohttp
import av
import openai
import orjson
import pytest

from faregate.sim.audio_common import pcm_pieces, speech_seconds, transcript_of


def _wav(seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24_000)
        w.writeframes(b"".join(pcm_pieces(seconds)))
    return out.getvalue()


async def test_transcripts_follow_the_audio(client: openai.AsyncOpenAI) -> None:
    audio = _wav(1.5)
    first = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio))
    again = await client.audio.transcriptions.create(model="whisper-1", file=("b.wav", audio))
    assert first.text == again.text == transcript_of(audio, 1.5)
    assert len(first.text.split()) == 3
    other = await client.audio.transcriptions.create(model="whisper-1", file=("c.wav", _wav(2)))
    assert other.text != first.text
    verbose = await client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", audio), response_format="verbose_json"
    )
    assert verbose.duration == 1.5


async def test_not_audio_is_refused(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"text"))


async def test_speech_is_a_tone_of_the_texts_length(client: openai.AsyncOpenAI) -> None:
    text = "Twenty characters!!!"
    async with client.audio.speech.with_streaming_response.create(
        model="tts-1", input=text, voice="alloy", response_format="flac"
    ) as response:
        assert response.headers["content-type"] == "audio/flac"
        data = b"".join([chunk async for chunk in response.iter_bytes()])
    with av.open(io.BytesIO(data)) as got:
        samples = sum(f.samples for f in got.decode(audio=0))
    assert samples / 24_000 == pytest.approx(speech_seconds(text))


async def test_a_cut_speech_stream(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {"model": "tts-1", "input": "x" * 100, "voice": "alloy", "response_format": "pcm"}
    headers = {"authorization": "Bearer k", "x-sim-fault": "cut_after=2"}
    got: list[bytes] = []

    async def listen() -> None:
        async with http.post(f"{sim_url}/v1/audio/speech", json=body, headers=headers) as r:
            async for chunk in r.content.iter_any():
                got.append(chunk)

    with pytest.raises(aiohttp.ClientPayloadError):
        await listen()
    assert 0 < len(b"".join(got)) < speech_seconds("x" * 100) * 48_000


async def test_a_form_route_plays_the_headers_fault(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        await client.audio.transcriptions.create(
            model="whisper-1",
            file=("a.wav", _wav(1)),
            extra_headers={"x-sim-fault": "status=429"},
        )


async def test_gemini_speech_and_transcription(sim_url: str, http: aiohttp.ClientSession) -> None:
    url = f"{sim_url}/v1beta/models/gemini-2.5-flash-preview-tts:generateContent"
    speech = {
        "contents": [{"parts": [{"text": "Say hello to everyone."}]}],
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
        },
    }
    async with http.post(url, json=speech, headers={"x-goog-api-key": "k"}) as r:
        reply = orjson.loads(await r.read())
    inline = reply["candidates"][0]["content"]["parts"][0]["inlineData"]
    assert inline["mimeType"] == "audio/L16;codec=pcm;rate=24000"
    pcm = base64.b64decode(inline["data"])
    assert len(pcm) == round(speech_seconds("Say hello to everyone.") * 24_000) * 2
    assert reply["usageMetadata"]["candidatesTokenCount"] > 0

    audio = _wav(2.0)
    listen = {
        "contents": [
            {
                "parts": [
                    {"text": "Transcribe."},
                    {
                        "inlineData": {
                            "mimeType": "audio/wav",
                            "data": base64.b64encode(audio).decode(),
                        }
                    },
                ]
            }
        ]
    }
    url = f"{sim_url}/v1beta/models/gemini-2.5-flash:generateContent"
    async with http.post(url, json=listen, headers={"x-goog-api-key": "k"}) as r:
        reply = orjson.loads(await r.read())
    assert reply["candidates"][0]["content"]["parts"][0]["text"] == transcript_of(audio, 2.0)
