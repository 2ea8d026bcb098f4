"""Reading a request: the media type of an uploaded file, told by its first bytes."""

from __future__ import annotations

GENERIC = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def sniff(head: bytes) -> str | None:
    """The media type the magic bytes at the start of a file show, or None: PNG, JPEG, WebP,
    GIF, WAV, MP3, Ogg, FLAC, WebM and MP4 (M4A as audio/mp4)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"ID3") or _mpeg_audio_frame(head):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head[4:8] == b"ftyp":
        return "audio/mp4" if head[8:11] == b"M4A" else "video/mp4"
    return None


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, then layer III (MP3)."""
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 == 0x02


def media_type(declared: str, head: bytes) -> str:
    """What the bytes show when they show it, else the declared type (without parameters),
    else application/octet-stream."""
    found = sniff(head)
    if found is not None:
        return found
    bare = declared.split(";", 1)[0].strip().lower()
    return "application/octet-stream" if bare in GENERIC else bare
