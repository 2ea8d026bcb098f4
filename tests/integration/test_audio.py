"""Speech to text and text to speech through the gateway with the official `openai` SDK:
OpenAI's audio routes and seed 004's chat forms, on OpenAI and Gemini upstreams, bad input,
upstream faults, and money asserted exactly."""

from __future__ import annotations

import base64
import io
import math
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import openai
import orjson
import pytest
from harness import Gateway, Sim, ledger_consistent, start_gateway, stop
from openai_spec import load_components, requires_spec, validate

from faregate.providers.audio_encode import encoder
from faregate.sim.audio_common import pcm_pieces, speech_seconds, transcript_of

PER_SECOND = 100  # micro-credits per second of input audio
PER_CHARACTER = 15  # micro-credits per character of speech input (15 000 000 per million)
START = 1_000_000


def _provider(name: str, fault: str, protocol: str = "openai") -> str:
    base = "{sim}/v1" if protocol == "openai" else "{sim}"
    return (
        f'\n[providers."{name}"]\nprotocol = "{protocol}"\nbase_url = "{base}"\n'
        f'api_key = "k"\nheaders = {{ "x-sim-fault" = "{fault}" }}\n'
        f'[providers."{name}".timeouts]\nfirst_byte = 1\nidle = 1\n'
    )


def _model(name: str, kind: str, provider: str, upstream: str, fallbacks: str = "") -> str:
    price = (
        f"audio_second = {PER_SECOND}" if kind == "stt" else f"characters = {PER_CHARACTER}000000"
    )
    extra = f"fallbacks = [{fallbacks}]\n" if fallbacks else ""
    return (
        f'\n[models."{name}"]\nkind = "{kind}"\nprovider = "{provider}"\n'
        f'upstream = "{upstream}"\nprice = {{ {price} }}\n{extra}'
    )


def _config(sim_url: str) -> str:
    text = "".join(
        (
            _provider("sim-500", "status=500"),
            _provider("sim-429", "status=429;retry_after=7"),
            _provider("sim-hang", "hang"),
            _provider("sim-cut", "cut_after=3"),
            _provider("gemini-cut", "cut_after=3", "gemini"),
            _model("openai/whisper-1", "stt", "sim", "whisper-1"),
            _model("openai/gpt-4o-mini-tts", "tts", "sim", "gpt-4o-mini-tts"),
            _model("openai/gpt-4o-transcribe", "stt", "sim", "gpt-4o-transcribe"),
            _model("google/chirp-3", "stt", "sim-gemini", "gemini-2.5-flash"),
            _model("google/gemini-tts", "tts", "sim-gemini", "gemini-2.5-flash-preview-tts"),
            _model("stt-500", "stt", "sim-500", "whisper-1"),
            _model("stt-500-fallback", "stt", "sim-500", "whisper-1", '"openai/whisper-1"'),
            _model("tts-429", "tts", "sim-429", "tts-1"),
            _model("tts-hang", "tts", "sim-hang", "tts-1"),
            _model("tts-cut", "tts", "sim-cut", "tts-1"),
            _model("gemini-tts-cut", "tts", "gemini-cut", "gemini-2.5-flash-preview-tts"),
        )
    )
    return text.replace("{sim}", sim_url)


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(
        sim.url,
        tmp_path_factory.mktemp("audio"),
        extra_models=_config(sim.url),
        sections=(
            "\n[audio]\nmax_duration_seconds = 30\nmax_input_characters = 500\n"
            "max_file_bytes = 3000000\n"
            "[plans.one-audio.audio]\nrpm = 1\n"
        ),
    )
    yield gateway
    stop(gateway.proc)


@pytest.fixture(autouse=True)
def _fresh(gw: Gateway, sim: Sim) -> None:
    gw.reset_routing()
    sim.reset()


@pytest.fixture
def client(gw: Gateway) -> Iterator[tuple[str, openai.OpenAI]]:
    account, key = gw.account(START)
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as c:
        yield account, c


def wav_file(seconds: float, rate: int = 16_000) -> bytes:
    pcm = b"".join(pcm_pieces(seconds, rate))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def mp3_file(seconds: float) -> bytes:
    enc = encoder("mp3", 24_000)
    return b"".join(enc.feed(p) for p in pcm_pieces(seconds)) + enc.finish()


def decoded_seconds(data: bytes) -> tuple[str, float]:
    """(container, seconds) of audio bytes, decoded frame by frame."""
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(stream))
        return c.format.name, samples / stream.rate


def settled(gw: Gateway, account: str) -> list[tuple[int, dict[str, int]]]:
    return [(r["cost"], r["units"]) for r in gw.ledger(account) if r["kind"] == "settle"]


def untouched(gw: Gateway, account: str) -> None:
    """Nothing held or charged: the balance as granted, the ledger only the grant."""
    state = gw.account_state(account)
    assert state["balance"] == START and state["open_holds"] == 0
    assert [r["kind"] for r in gw.ledger(account)] == ["grant"]


def test_transcription_of_a_wav_file_bills_the_seconds_upstream_reports(
    gw: Gateway, client: tuple[str, openai.OpenAI]
) -> None:
    account, c = client
    audio = wav_file(2.5)
    raw = c.audio.transcriptions.with_raw_response.create(
        model="openai/whisper-1", file=("hello.wav", audio, "audio/wav"), language="en"
    )
    result = raw.parse()
    assert result.text == transcript_of(audio, 2.5)
    # the upstream reports 3 whole seconds; the hold was on the file's 2.5
    assert raw.headers["x-faregate-cost"] == str(3 * PER_SECOND)
    assert settled(gw, account) == [(3 * PER_SECOND, {"audio_ms": 3000})]
    hold = next(r for r in gw.ledger(account) if r["kind"] == "hold")
    assert hold["amount"] == -math.ceil(2.5 * PER_SECOND)
    ledger_consistent(gw, account)


def test_transcription_of_an_mp3_file_in_every_format(
    gw: Gateway, client: tuple[str, openai.OpenAI]
) -> None:
    account, c = client
    audio = mp3_file(4.0)
    seconds = decoded_seconds(audio)[1]
    expected = transcript_of(audio, round(seconds * 1000) / 1000)
    verbose = c.audio.transcriptions.create(
        model="openai/whisper-1",
        file=("talk.mp3", audio, "audio/mpeg"),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.text.split()[0] == expected.split()[0]
    assert verbose.duration == pytest.approx(seconds, abs=0.2)
    assert verbose.words and verbose.segments
    text = c.audio.transcriptions.create(
        model="openai/whisper-1", file=("talk.mp3", audio), response_format="text"
    )
    assert text == verbose.text
    srt = c.audio.transcriptions.create(
        model="openai/whisper-1", file=("talk.mp3", audio), response_format="srt"
    )
    assert srt.startswith("1\n00:00:00,000 --> 00:00:0")
    vtt = c.audio.transcriptions.create(
        model="openai/whisper-1", file=("talk.mp3", audio), response_format="vtt"
    )
    assert vtt.startswith("WEBVTT")
    # verbose_json reports the exact duration; text, srt and vtt none: the file's is billed
    ms = [units["audio_ms"] for _, units in settled(gw, account)]
    assert len(ms) == 4 and all(abs(m - seconds * 1000) <= 200 for m in ms)
    ledger_consistent(gw, account)


def test_a_long_file_of_several_megabytes(gw: Gateway, client: tuple[str, openai.OpenAI]) -> None:
    account, c = client
    audio = wav_file(28.0, 48_000)
    assert len(audio) > 2_500_000
    result = c.audio.transcriptions.create(model="openai/whisper-1", file=("long.wav", audio))
    assert result.text == transcript_of(audio, 28.0)
    assert settled(gw, account) == [(28 * PER_SECOND, {"audio_ms": 28_000})]


# The SDK marks `audio.translations` deprecated; the route is served all the same.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translation(gw: Gateway, client: tuple[str, openai.OpenAI]) -> None:
    account, c = client
    audio = wav_file(1.0)
    result = c.audio.translations.create(model="openai/whisper-1", file=("fr.wav", audio))
    assert result.text == transcript_of(audio, 1.0)
    assert settled(gw, account) == [(PER_SECOND, {"audio_ms": 1000})]


@pytest.mark.parametrize("fmt", ["mp3", "wav", "opus", "aac", "flac", "pcm"])
def test_speech_streams_to_a_file_that_decodes_as_asked(
    gw: Gateway, client: tuple[str, openai.OpenAI], tmp_path: Path, fmt: str
) -> None:
    account, c = client
    text = "The quick brown fox jumps over the lazy dog."
    target = tmp_path / f"speech.{fmt}"
    with c.audio.speech.with_streaming_response.create(
        model="openai/gpt-4o-mini-tts", input=text, voice="alloy", response_format=fmt
    ) as response:
        assert response.headers["content-type"].startswith("audio/")
        assert response.headers["x-balancer-credits-used"] == str(len(text) * PER_CHARACTER)
        response.stream_to_file(target)
    data = target.read_bytes()
    if fmt == "pcm":
        assert len(data) == round(speech_seconds(text) * 24_000) * 2
    else:
        container, seconds = decoded_seconds(data)
        assert container == {"opus": "ogg", "aac": "aac"}.get(fmt, fmt)
        assert seconds == pytest.approx(speech_seconds(text), abs=0.15)
    assert settled(gw, account) == [(len(text) * PER_CHARACTER, {"characters": len(text)})]
    ledger_consistent(gw, account)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_gemini_upstream_for_both(gw: Gateway, client: tuple[str, openai.OpenAI]) -> None:
    account, c = client
    audio = wav_file(3.2)
    result = c.audio.transcriptions.create(model="google/chirp-3", file=("a.wav", audio))
    assert result.text == transcript_of(audio, 3.2)
    translated = c.audio.translations.create(
        model="google/chirp-3", file=("a.wav", audio), response_format="vtt"
    )
    assert translated.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:03.200\n")
    text = "Gemini speaks this sentence."
    for fmt in ("mp3", "wav"):
        with c.audio.speech.with_streaming_response.create(
            model="google/gemini-tts", input=text, voice="Kore", response_format=fmt
        ) as response:
            data = response.read()
        container, seconds = decoded_seconds(data)
        assert container == fmt
        assert seconds == pytest.approx(speech_seconds(text), abs=0.15)
    # Gemini reports no duration: the file's 3.2 s is billed, rounded up once
    stt = math.ceil(3.2 * PER_SECOND)
    tts = len(text) * PER_CHARACTER
    assert sorted(cost for cost, _ in settled(gw, account)) == sorted([stt, stt, tts, tts])
    ledger_consistent(gw, account)


@pytest.mark.parametrize("model", ["openai/gpt-4o-transcribe", "google/chirp-3"])
def test_a_streamed_transcript(gw: Gateway, client: tuple[str, openai.OpenAI], model: str) -> None:
    account, c = client
    audio = wav_file(2.0)
    events = list(c.audio.transcriptions.create(model=model, file=("a.wav", audio), stream=True))
    expected = transcript_of(audio, 2.0)
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert len(deltas) == len(expected.split()) and "".join(deltas) == expected
    assert events[-1].type == "transcript.text.done" and events[-1].text == expected
    # billed on the file's two seconds: a stream reports no duration
    assert settled(gw, account) == [(2 * PER_SECOND, {"audio_ms": 2000})]
    ledger_consistent(gw, account)


def test_a_model_that_cannot_stream_a_transcript_says_so(
    gw: Gateway, client: tuple[str, openai.OpenAI]
) -> None:
    account, c = client
    with pytest.raises(openai.BadRequestError) as err:
        c.audio.transcriptions.create(
            model="openai/whisper-1", file=("a.wav", wav_file(1.0)), stream=True
        )
    _refused(err, 400, "upstream_rejected_request")
    assert gw.account_state(account)["balance"] == START


def test_seed_speech_to_text_through_chat(gw: Gateway, client: tuple[str, openai.OpenAI]) -> None:
    account, c = client
    audio = wav_file(9.2)
    body = {
        "model": "openai/whisper-1",
        "input_audio": {"data": base64.b64encode(audio).decode(), "format": "wav"},
        "language": "en",
    }
    auth = {"authorization": f"Bearer {c.api_key}"}
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"text": transcript_of(audio, 9.2)}
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={**auth, "x-balancer-metadata": "1"},
        timeout=30,
    )
    meta = r.json()["_balancer"]
    assert r.json()["data"] == {"text": transcript_of(audio, 9.2)}
    assert meta["credits_used"] == 10 * PER_SECOND  # the upstream's 10 whole seconds
    assert meta["audio_seconds"] == 10.0
    assert meta["model_used"] == "openai/whisper-1"
    assert meta["cost_usd"] == pytest.approx(0.001)
    ledger_consistent(gw, account)


def test_seed_text_to_speech_through_chat(gw: Gateway, client: tuple[str, openai.OpenAI]) -> None:
    account, c = client
    text = "Hello, this is a TTS test."
    for model in ("openai/gpt-4o-mini-tts", "google/gemini-tts"):
        r = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": model, "input": text, "voice": "alloy", "response_format": "mp3"},
            headers={"authorization": f"Bearer {c.api_key}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "audio/mpeg"
        assert r.headers["x-balancer-credits-used"] == str(len(text) * PER_CHARACTER)
        assert r.headers["x-balancer-cost-usd"] == "0.000390"
        assert r.headers["x-balancer-model-used"] == model
        assert r.headers["x-faregate-cost"] == str(len(text) * PER_CHARACTER)
        assert decoded_seconds(r.content)[0] == "mp3"
    assert [cost for cost, _ in settled(gw, account)] == [len(text) * PER_CHARACTER] * 2
    ledger_consistent(gw, account)


def test_audio_models_are_listed(client: tuple[str, openai.OpenAI]) -> None:
    _, c = client
    ids = {m.id for m in c.models.list()}
    assert {"openai/whisper-1", "openai/gpt-4o-mini-tts", "google/gemini-tts"} <= ids


def _refused(err: pytest.ExceptionInfo[openai.APIStatusError], status: int, code: str) -> None:
    assert err.value.status_code == status
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == code, body


def test_bad_input_is_refused_before_anything_is_held(
    gw: Gateway, sim: Sim, client: tuple[str, openai.OpenAI]
) -> None:
    account, c = client
    stt = c.audio.transcriptions
    with pytest.raises(openai.BadRequestError) as err:
        stt.create(model="openai/whisper-1", file=("notes.wav", b"this is not audio at all"))
    _refused(err, 400, "invalid_audio")
    with pytest.raises(openai.BadRequestError) as err:
        stt.create(model="openai/whisper-1", file=("empty.wav", b""))
    _refused(err, 400, "empty_file")
    with pytest.raises(openai.APIStatusError) as err:
        stt.create(model="openai/whisper-1", file=("long.wav", wav_file(31, 8000)))
    _refused(err, 413, "audio_too_long")
    with pytest.raises(openai.APIStatusError) as err:
        stt.create(model="openai/whisper-1", file=("big.wav", wav_file(29, 56_000)))
    _refused(err, 413, "audio_too_large")
    with pytest.raises(openai.BadRequestError) as err:
        stt.create(model="openai/gpt-4o-mini-tts", file=("a.wav", wav_file(1)))
    _refused(err, 400, "wrong_model_kind")
    speech = c.audio.speech
    cases = [
        ({"input": ""}, "empty_input"),
        ({"voice": "nobody"}, "invalid_voice"),
        ({"response_format": "ogg-vorbis"}, "invalid_value"),
        ({"input": "x" * 501}, "input_too_long"),
        ({"speed": 9}, "invalid_value"),
    ]
    for change, code in cases:
        args = {"model": "openai/gpt-4o-mini-tts", "input": "hi", "voice": "alloy", **change}
        with pytest.raises(openai.BadRequestError) as err:
            speech.create(**args)  # type: ignore[arg-type]
        _refused(err, 400, code)
    chat = gw.url + "/v1/chat/completions"
    auth = {"authorization": f"Bearer {c.api_key}"}
    for body, code in [
        ({"model": "openai/whisper-1"}, "missing_input_audio"),
        ({"model": "openai/whisper-1", "input_audio": {"data": "%%%"}}, "invalid_base64"),
        ({"model": "openai/whisper-1", "input_audio": {"data": ""}}, "empty_file"),
        ({"model": "openai/gpt-4o-mini-tts", "input": "hi", "voice": "x"}, "invalid_voice"),
    ]:
        r = httpx.post(chat, json=body, headers=auth, timeout=30)
        assert (r.status_code, r.json()["error"]["code"]) == (400, code), r.text
    untouched(gw, account)
    assert sim.stats()["requests"] == 0


def test_a_failing_upstream_falls_back_or_answers_a_clear_error(
    gw: Gateway, sim: Sim, client: tuple[str, openai.OpenAI]
) -> None:
    account, c = client
    audio = wav_file(1.0)
    ok = c.audio.transcriptions.with_raw_response.create(
        model="stt-500-fallback", file=("a.wav", audio)
    )
    assert ok.headers["x-faregate-model"] == "openai/whisper-1"
    assert settled(gw, account) == [(PER_SECOND, {"audio_ms": 1000})]
    ledger_consistent(gw, account)

    other, key = gw.account(START)
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as c2:
        with pytest.raises(openai.APIStatusError) as err:
            c2.audio.transcriptions.create(model="stt-500", file=("a.wav", audio))
        _refused(err, 502, "provider_error")
        with pytest.raises(openai.APIStatusError) as err:
            c2.audio.speech.create(model="tts-429", input="hi", voice="alloy")
        _refused(err, 503, "no_provider_available")
        with pytest.raises(openai.APIStatusError) as err:
            c2.audio.speech.create(model="tts-hang", input="hi", voice="alloy")
        _refused(err, 408, "provider_timeout")
    state = gw.account_state(other)
    assert state["balance"] == START and state["open_holds"] == 0
    kinds = sorted(r["kind"] for r in gw.ledger(other))
    assert kinds == sorted(["grant"] + ["hold", "release"] * 3)
    ledger_consistent(gw, other)


@pytest.mark.parametrize("model", ["tts-cut", "gemini-tts-cut"])
def test_a_speech_stream_cut_mid_way_bills_its_input(
    gw: Gateway, client: tuple[str, openai.OpenAI], model: str
) -> None:
    account, c = client
    text = "A long sentence that the upstream will not finish speaking, cut after three chunks."
    received: list[bytes] = []

    def listen() -> None:
        with c.audio.speech.with_streaming_response.create(
            model=model, input=text, voice="alloy", response_format="wav"
        ) as response:
            received.extend(response.iter_bytes())

    # the stream ends without its last chunk (the SDK's HTTP client says so in its own type)
    with pytest.raises(Exception, match="incomplete chunked read"):
        listen()
    assert b"".join(received).startswith(b"RIFF")
    rows = [r for r in gw.ledger(account) if r["kind"] == "settle"]
    assert [(r["cost"], r["units"]) for r in rows] == [
        (len(text) * PER_CHARACTER, {"characters": len(text)})
    ]
    assert "the stream broke after the first byte" in rows[0]["note"]
    assert gw.account_state(account)["open_holds"] == 0
    ledger_consistent(gw, account)


@requires_spec
@pytest.mark.parametrize("model", ["openai/gpt-4o-transcribe", "google/chirp-3"])
def test_transcripts_match_the_openai_spec(
    gw: Gateway, client: tuple[str, openai.OpenAI], model: str
) -> None:
    _, c = client

    def valid(name: str, instance: object) -> None:
        validate(load_components(), name, instance)

    def post(**fields: str) -> httpx.Response:
        r = httpx.post(
            gw.url + "/v1/audio/transcriptions",
            data={"model": model, **fields},
            files={"file": ("a.wav", wav_file(1.5), "audio/wav")},
            headers={"authorization": f"Bearer {c.api_key}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r

    valid("CreateTranscriptionResponseJson", post().json())
    verbose = post(response_format="verbose_json", **{"timestamp_granularities[]": "word"})
    valid("CreateTranscriptionResponseVerboseJson", verbose.json())
    events = [
        orjson.loads(line[6:])
        for line in post(stream="true").text.splitlines()
        if line.startswith("data: ")
    ]
    for event in events[:-1]:
        valid("TranscriptTextDeltaEvent", event)
    valid("TranscriptTextDoneEvent", events[-1])


def test_the_audio_routes_count_against_the_plans_audio_class(gw: Gateway) -> None:
    account, key = gw.account(START)
    gw.admin("PATCH", f"/accounts/{account}", json={"plan": "one-audio"})
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as c:
        c.audio.speech.create(model="openai/gpt-4o-mini-tts", input="One.", voice="alloy")
        with pytest.raises(openai.RateLimitError) as err:
            c.audio.transcriptions.create(model="openai/whisper-1", file=("a.wav", wav_file(1)))
        _refused(err, 429, "rate_limit_exceeded")
        c.embeddings.create(model="embed-sim", input="another class")
    assert len(settled(gw, account)) == 2


def test_an_idempotent_transcription_is_billed_once(
    gw: Gateway, client: tuple[str, openai.OpenAI]
) -> None:
    account, c = client
    audio = wav_file(1.0)
    replies = [
        c.audio.transcriptions.with_raw_response.create(
            model="openai/whisper-1",
            file=("a.wav", audio),
            extra_headers={"idempotency-key": "stt-once"},
        )
        for _ in range(2)
    ]
    assert replies[0].parse().text == replies[1].parse().text == transcript_of(audio, 1.0)
    assert replies[1].headers["idempotent-replayed"] == "true"
    assert settled(gw, account) == [(PER_SECOND, {"audio_ms": 1000})]


@pytest.mark.postgres
def test_audio_money_on_postgresql(sim: Sim, tmp_path: Path, pg_url: str) -> None:
    pg = start_gateway(sim.url, tmp_path, database_url=pg_url, extra_models=_config(sim.url))
    try:
        account, key = pg.account(START)
        text = "Spoken on PostgreSQL."
        with openai.OpenAI(base_url=pg.url + "/v1", api_key=key, max_retries=0) as c:
            audio = wav_file(1.2)
            result = c.audio.transcriptions.create(model="google/chirp-3", file=("a.wav", audio))
            assert result.text == transcript_of(audio, 1.2)
            with c.audio.speech.with_streaming_response.create(
                model="openai/gpt-4o-mini-tts", input=text, voice="alloy"
            ) as response:
                assert decoded_seconds(response.read())[0] == "mp3"
        assert sorted(settled(pg, account), key=lambda row: row[0]) == [
            (120, {"audio_ms": 1200}),
            (len(text) * PER_CHARACTER, {"characters": len(text)}),
        ]
        ledger_consistent(pg, account)
    finally:
        stop(pg.proc)
