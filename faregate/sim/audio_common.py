"""Audio of the simulator: a tone of a given length in any speech format, and a transcript
derived deterministically from the bytes and length of the audio it hears."""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Iterator

from faregate.pipeline.audio_probe import probe_bytes
from faregate.providers.audio_encode import encoder

RATE = 24_000
PIECE = RATE // 10  # samples per generated piece: a tenth of a second
SECONDS_PER_CHARACTER = 0.06
"""The simulator speaks at about 16 characters per second."""

WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
    "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
    "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
)  # fmt: skip


def speech_seconds(text: str) -> float:
    """How long the simulator's speech of `text` lasts (at least half a second)."""
    return max(0.5, round(len(text) * SECONDS_PER_CHARACTER, 3))


def pcm_pieces(seconds: float, rate: int = RATE) -> Iterator[bytes]:
    """A 440 Hz tone of `seconds` as s16le mono PCM, a tenth of a second at a time."""
    total = round(seconds * rate)
    step = 2 * math.pi * 440 / rate
    for start in range(0, total, PIECE):
        samples = array(
            "h", (int(8000 * math.sin(step * i)) for i in range(start, min(total, start + PIECE)))
        )
        yield samples.tobytes()


def tone(seconds: float, fmt: str) -> Iterator[bytes]:
    """The tone encoded in `fmt` (mp3, opus, aac, flac, wav, pcm), chunk by chunk as each
    piece is encoded (empty chunks skipped)."""
    enc = encoder(fmt, RATE)
    try:
        for pcm in pcm_pieces(seconds):
            out = enc.feed(pcm)
            if out:
                yield out
        tail = enc.finish()
        if tail:
            yield tail
    finally:
        enc.close()


def duration_of(audio: bytes) -> float | None:
    """The audio's length in seconds, or None when it is not audio."""
    try:
        return probe_bytes(audio).duration_ms / 1000
    except Exception:
        return None


def transcript_of(audio: bytes, seconds: float) -> str:
    """Two words per second of audio (at least one), chosen by a hash of the audio's bytes."""
    digest = hashlib.sha256(audio).digest()
    count = max(1, round(seconds * 2))
    words = [WORDS[digest[i % len(digest)] % len(WORDS)] for i in range(count)]
    return " ".join(words).capitalize() + "."
