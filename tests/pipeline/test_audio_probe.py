"""Reading an uploaded audio file: its container and duration, or a clear 400."""

from __future__ import annotations

import io
import wave

import av
import pytest

from faregate.pipeline.audio_probe import AudioInfo, UnreadableAudio, probe_bytes
from faregate.providers.audio_encode import encoder


def _pcm(seconds: float, rate: int) -> bytes:
    size = round(seconds * rate) * 2
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def test_a_wav_files_duration() -> None:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(_pcm(3.0, 8000))
    info = probe_bytes(out.getvalue())
    assert (info.container, info.media_type, info.duration_ms) == ("wav", "audio/wav", 3000)


@pytest.mark.parametrize(
    ("fmt", "container", "media_type"),
    [("mp3", "mp3", "audio/mpeg"), ("opus", "ogg", "audio/ogg"), ("flac", "flac", "audio/flac")],
)
def test_compressed_files(fmt: str, container: str, media_type: str) -> None:
    enc = encoder(fmt, 24_000)
    data = enc.feed(_pcm(2.0, 24_000)) + enc.finish()
    info = probe_bytes(data)
    assert (info.container, info.media_type) == (container, media_type)
    assert abs(info.duration_ms - 2000) <= 120


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"just some text, not audio", "invalid_audio"),
        (b"RIFF\x00\x00\x00\x00WAVE", "invalid_audio"),
        (bytes(4096), "invalid_audio"),
    ],
)
def test_what_is_not_audio_is_refused(data: bytes, code: str) -> None:
    with pytest.raises(UnreadableAudio) as err:
        probe_bytes(data, "input_audio")
    assert err.value.code == code and err.value.param == "input_audio"
    assert err.value.status == 400


def _streamed_webm(seconds: float) -> bytes:
    """Opus in WebM written as a browser records it: no duration in the header."""
    out = io.BytesIO()
    out.seekable = lambda: False  # type: ignore[method-assign]
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48_000, layout="mono")
        frame = av.AudioFrame(format="s16", layout="mono", samples=round(seconds * 48_000))
        frame.planes[0].update(_pcm(seconds, 48_000))
        frame.sample_rate = 48_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def test_an_m4a_file() -> None:
    out = io.BytesIO()
    with av.open(out, "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=24_000, layout="mono")
        frame = av.AudioFrame(format="s16", layout="mono", samples=48_000)
        frame.planes[0].update(_pcm(2.0, 24_000))
        frame.sample_rate = 24_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    info = probe_bytes(out.getvalue())
    assert (info.container, info.media_type) == ("m4a", "audio/mp4")
    assert abs(info.duration_ms - 2000) <= 120


def test_a_file_without_a_stated_duration_is_decoded_up_to_the_cap() -> None:
    data = _streamed_webm(3.0)
    assert probe_bytes(data) == AudioInfo("webm", "audio/webm", 3000)
    assert 1000 < probe_bytes(data, stop_after_ms=1000).duration_ms < 1100
