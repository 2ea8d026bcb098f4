"""Raw PCM (signed 16-bit little-endian, mono) into a speech format, chunk by chunk as it
arrives: WAV with the standard library's header layout, the rest encoded by PyAV."""

from __future__ import annotations

import contextlib
import io
import struct
from typing import Any, Protocol

STREAMING_SIZE = 0xFFFFFFFF
"""The RIFF and data sizes of a WAV whose length is not known when its header leaves."""

# format -> (PyAV container, codec)
_CODECS = {
    "mp3": ("mp3", "libmp3lame"),
    "aac": ("adts", "aac"),
    "opus": ("ogg", "libopus"),
    "flac": ("flac", "flac"),
}


class Encoder(Protocol):
    def feed(self, pcm: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def close(self) -> None: ...


def wav_header(rate: int, channels: int = 1, width: int = 2) -> bytes:
    """A canonical 44-byte WAV header for a stream of unknown length."""
    block = channels * width
    return (
        b"RIFF"
        + struct.pack("<I", STREAMING_SIZE)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, width * 8)
        + b"data"
        + struct.pack("<I", STREAMING_SIZE)
    )


class _Raw:
    """PCM as it is (`pcm`), or after a WAV header (`wav`)."""

    def __init__(self, header: bytes) -> None:
        self._header = header

    def feed(self, pcm: bytes) -> bytes:
        head, self._header = self._header, b""
        return head + pcm

    def finish(self) -> bytes:
        head, self._header = self._header, b""
        return head

    def close(self) -> None:
        pass


class _Sink(io.RawIOBase):
    """Where the muxer writes: taken out after every frame, never seeked."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        self.buf += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


class _Coded:
    """PCM encoded with PyAV; each `feed` returns the container bytes that are ready."""

    def __init__(self, fmt: str, rate: int) -> None:
        import av  # loaded on first use: only speech in a coded format needs it

        container, codec = _CODECS[fmt]
        self._av = av
        self._rate = rate
        self._sink = _Sink()
        self._out = av.open(self._sink, "w", format=container)
        self._stream: Any = self._out.add_stream(codec, rate=rate, layout="mono")
        self._odd = b""  # a byte left over from a chunk that split a sample
        self._done = False

    def feed(self, pcm: bytes) -> bytes:
        data = self._odd + pcm
        usable = len(data) - len(data) % 2
        self._odd = data[usable:]
        if usable:
            frame = self._av.AudioFrame(format="s16", layout="mono", samples=usable // 2)
            frame.planes[0].update(data[:usable])
            frame.sample_rate = self._rate
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
        return self._sink.take()

    def finish(self) -> bytes:
        if not self._done:
            self._done = True
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            self._out.close()
        return self._sink.take()

    def close(self) -> None:
        if not self._done:
            self._done = True
            with contextlib.suppress(Exception):  # abandoned: nothing is left to deliver
                self._out.close()


def encoder(fmt: str, rate: int) -> Encoder:
    """An encoder of mono s16le PCM at `rate` Hz into `fmt` (one of `audio.SPEECH_FORMATS`)."""
    if fmt == "pcm":
        return _Raw(b"")
    if fmt == "wav":
        return _Raw(wav_header(rate))
    return _Coded(fmt, rate)
