"""What an uploaded audio file is: its container and duration, read from the file itself
(PyAV, which reads every container FFmpeg does) before any upstream call."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

from faregate.errors import BadRequest

CONTAINERS = {
    "wav": ("wav", "audio/wav"),
    "mp3": ("mp3", "audio/mpeg"),
    "mov,mp4,m4a,3gp,3g2,mj2": ("m4a", "audio/mp4"),
    "ogg": ("ogg", "audio/ogg"),
    "flac": ("flac", "audio/flac"),
    "matroska,webm": ("webm", "audio/webm"),
}
"""PyAV's demuxer name -> (the format's short name, its media type): what the routes take."""

ACCEPTED = "flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm"


class UnreadableAudio(BadRequest):
    """An uploaded file that is not audio the gateway can read."""

    code = "invalid_audio"


@dataclass(frozen=True, slots=True)
class AudioInfo:
    container: str  # wav, mp3, m4a, ogg, flac, webm
    media_type: str
    duration_ms: int


def _refuse(why: str, param: str) -> UnreadableAudio:
    return UnreadableAudio(
        f"The file could not be read as audio ({why}). Supported formats: {ACCEPTED}.",
        param=param,
    )


def probe_bytes(data: bytes, param: str = "file", stop_after_ms: int | None = None) -> AudioInfo:
    """The container and duration of `data`: from the container's header when it states
    one, else by decoding every frame (only until `stop_after_ms`, past which the length
    stands at what was decoded: enough to refuse a file over the cap without decoding it
    all); the first frame is decoded either way, so a file whose audio does not decode is
    refused (400)."""
    import av  # loaded on first use

    if not data:
        raise UnreadableAudio("The audio file is empty.", code="empty_file", param=param)
    try:
        with av.open(io.BytesIO(data), "r") as container:
            known = CONTAINERS.get(container.format.name)
            if known is None or not container.streams.audio:
                raise _refuse(f"no audio stream in a format taken: {container.format.name}", param)
            stream = container.streams.audio[0]
            declared = container.duration  # microseconds, or None
            samples = 0
            rate = stream.rate or stream.sample_rate or 0
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate or rate
                if declared is not None:
                    break  # decodes: the header's duration stands
                if stop_after_ms is not None and rate and samples * 1000 > stop_after_ms * rate:
                    break  # already past the cap
    except UnreadableAudio:
        raise
    except (av.FFmpegError, ValueError, IndexError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise _refuse(str(why)[:120], param) from None
    if samples == 0 or rate <= 0:
        raise _refuse("no decodable audio frame", param)
    if declared is not None and declared > 0:
        duration_ms = -(-declared // 1000)
    else:
        duration_ms = -(-samples * 1000 // rate)
    return AudioInfo(known[0], known[1], max(1, int(duration_ms)))


async def probe(data: bytes, param: str = "file", stop_after_ms: int | None = None) -> AudioInfo:
    """`probe_bytes` off the event loop."""
    return await asyncio.to_thread(probe_bytes, data, param, stop_after_ms)
