"""Speech and transcription on the runner, on a scripted upstream and an in-memory ledger:
what each request holds and settles, per second, per character or per token, and how a
broken speech stream is billed."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from pipeline.fakes import KEY, FakeStore, FakeUpstream, Script, reply, services

from faregate.errors import BadRequest, FaregateError
from faregate.pipeline import speech, transcription
from faregate.providers.audio import SpeechCall, TranscribeCall

OA, GM = "http://oa.test/v1", "http://gm.test"
BALANCE = 1_000_000

CONFIG: dict[str, Any] = {
    "routing": {"wait_for_recovery_seconds": 0},
    "providers": {"oa": {"base_url": OA}, "gm": {"base_url": GM, "protocol": "gemini"}},
    "models": {
        "tts": {"kind": "tts", "provider": "oa", "price": {"characters": 15_000_000}},
        "tts-g": {"kind": "tts", "provider": "gm", "price": {"characters": 15_000_000}},
        "tts-tok": {
            "kind": "tts",
            "provider": "oa",
            "price": {"input": 1_000_000, "output": 2_000_000},
            "max_output_tokens": 100,
        },
        "stt-g": {"kind": "stt", "provider": "gm", "price": {"audio_second": 100}},
        "stt-g-tok": {
            "kind": "stt",
            "provider": "gm",
            "price": {"input": 1_000_000, "output": 2_000_000},
            "max_output_tokens": 100,
        },
    },
}


def setup(scripts: dict[str, list[Script]]) -> tuple[Any, FakeUpstream, FakeStore]:
    upstream, store = FakeUpstream(scripts), FakeStore(BALANCE)
    return services(CONFIG, upstream, store), upstream, store


def say(model: str = "tts", text: str = "Hello there.", **kw: Any) -> SpeechCall:
    return SpeechCall(model=model, request_id="r", input=text, voice="alloy", **kw)


def hear(model: str, seconds: float = 2.5) -> TranscribeCall:
    return TranscribeCall(
        model=model,
        request_id="r",
        audio=b"RIFF....",
        filename="a.wav",
        media_type="audio/wav",
        container="wav",
        duration_ms=round(seconds * 1000),
    )


async def drain(svc: Any, call: SpeechCall) -> tuple[bytes, list[FaregateError]]:
    opened = await speech.open_stream(svc, KEY, call)
    audio, errors = b"", []
    async for item in opened.events:
        if isinstance(item, FaregateError):
            errors.append(item)
        else:
            audio += item
    return audio, errors


async def test_speech_holds_and_bills_every_character() -> None:
    svc, upstream, store = setup({OA: [Script(chunks=[b"ID3", b"abc", b"def"])]})
    audio, errors = await drain(svc, say())
    assert (audio, errors) == (b"ID3abcdef", [])
    assert list(store.holds.values()) == [12 * 15]
    (settled,) = store.settled.values()
    assert (settled.cost, settled.units, settled.note) == (180, (("characters", 12),), None)
    assert upstream.sent[0].path == "/audio/speech"
    assert upstream.sent[0].body == {
        "model": "tts",
        "input": "Hello there.",
        "voice": "alloy",
        "response_format": "mp3",
    }


async def test_a_speech_stream_cut_mid_way_bills_the_whole_input_once() -> None:
    svc, _, store = setup({OA: [Script(chunks=[b"a", b"b", b"c"], break_after=2)]})
    audio, errors = await drain(svc, say())
    assert audio == b"ab" and [e.code for e in errors] == ["provider_timeout"]
    (settled,) = store.settled.values()
    assert settled.cost == 180 and "the stream broke after the first byte" in str(settled.note)
    assert store.balance == BALANCE - 180 and store.open_holds == []


async def test_a_token_priced_speech_model_holds_its_bound_and_estimates() -> None:
    svc, _, store = setup({OA: [Script(chunks=[b"x"])]})
    await drain(svc, say("tts-tok", "Hi."))
    # 3 bytes + 16 of headroom at 1 credit, 100 output tokens at 2
    assert list(store.holds.values()) == [19 + 200]
    (settled,) = store.settled.values()
    assert (
        settled.estimated and settled.cost == settled.prompt_tokens + 2 * settled.completion_tokens
    )


def pcm_events(pieces: list[bytes], usage: bool = True) -> list[bytes]:
    out = []
    for i, pcm in enumerate(pieces):
        inline = {
            "mimeType": "audio/L16;codec=pcm;rate=24000",
            "data": base64.b64encode(pcm).decode(),
        }
        chunk: dict[str, Any] = {"candidates": [{"content": {"parts": [{"inlineData": inline}]}}]}
        if usage and i == len(pieces) - 1:
            chunk["usageMetadata"] = {"promptTokenCount": 4, "candidatesTokenCount": 30}
        out.append(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
    return out


async def test_gemini_speech_is_wrapped_into_wav_as_it_arrives() -> None:
    pieces = [b"\x01\x00" * 100, b"\x02\x00" * 100]
    svc, upstream, store = setup({GM: [Script(chunks=pcm_events(pieces))]})
    audio, errors = await drain(svc, say("tts-g", response_format="wav"))
    assert errors == []
    assert audio[:4] == b"RIFF" and audio[44:] == b"".join(pieces)
    sent = upstream.sent[0]
    assert sent.path.endswith(":streamGenerateContent?alt=sse")
    config = sent.body["generationConfig"]
    assert config["responseModalities"] == ["AUDIO"]
    assert config["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] == "Zephyr"
    (settled,) = store.settled.values()
    assert settled.cost == 180 and (settled.prompt_tokens, settled.completion_tokens) == (4, 30)


async def test_unknown_voice_is_refused_before_any_hold() -> None:
    svc, upstream, store = setup({OA: [Script()]})
    with pytest.raises(BadRequest) as err:
        await speech.open_stream(svc, KEY, SpeechCall("tts", "r", "Hi", "Kore"))
    assert err.value.code == "invalid_voice"
    assert store.holds == {} and upstream.sent == []
    svc, upstream, store = setup({GM: [Script(chunks=pcm_events([b"\0\0"]))]})
    await drain(svc, SpeechCall("tts-g", "r", "Hi", "kore"))  # Gemini's own name, any case
    assert len(store.settled) == 1


def gemini_text(text: str, usage: bool = True) -> Script:
    body: dict[str, Any] = {"candidates": [{"content": {"parts": [{"text": text}]}}]}
    if usage:
        body["usageMetadata"] = {"promptTokenCount": 90, "candidatesTokenCount": 5}
    return reply(200, body)


async def test_transcription_per_second_bills_the_files_duration() -> None:
    svc, upstream, store = setup({GM: [gemini_text("Hello world.")]})
    done = await transcription.transcribe(svc, KEY, hear("stt-g", 2.5))
    assert done.result.text == "Hello world."
    assert orjson.loads(done.result.body) == {"text": "Hello world."}
    assert list(store.holds.values()) == [250]
    (settled,) = store.settled.values()
    assert (settled.cost, settled.units) == (250, (("audio_ms", 2500),))
    part = upstream.sent[0].body["contents"][0]["parts"][1]["inlineData"]
    assert part["mimeType"] == "audio/wav" and base64.b64decode(part["data"]) == b"RIFF...."


async def test_transcription_per_token_bills_the_reported_tokens() -> None:
    svc, _, store = setup({GM: [gemini_text("Hello world.")]})
    await transcription.transcribe(svc, KEY, hear("stt-g-tok", 2.0))
    # 2 s at 50 tokens + 64 of headroom, 100 output tokens at 2
    assert list(store.holds.values()) == [164 + 200]
    (settled,) = store.settled.values()
    assert (settled.cost, settled.units, settled.estimated) == (90 + 10, (), False)


async def test_transcription_without_usage_is_estimated_per_token() -> None:
    svc, _, store = setup({GM: [gemini_text("Hello world.", usage=False)]})
    await transcription.transcribe(svc, KEY, hear("stt-g-tok", 2.0))
    (settled,) = store.settled.values()
    assert settled.estimated and settled.prompt_tokens == 100


def test_the_hold_is_the_worst_case_over_the_chain() -> None:
    svc, _, _ = setup({OA: [Script()]})
    chain = [svc.catalog.models["tts"], svc.catalog.models["tts-tok"]]
    call = say(text="x" * 40)
    assert speech.hold_amount(chain, call) == max(40 * 15, 40 + 16 + 200)
