"""The media type of an upload from its first bytes, else from what the client declared."""

from __future__ import annotations

import pytest

from faregate.http.sniff import media_type, sniff

SAMPLES = [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"GIF89a\x01\x00", "image/gif"),
    (b"GIF87a\x01\x00", "image/gif"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt ", "audio/wav"),
    (b"ID3\x04\x00\x00\x00\x00", "audio/mpeg"),
    (b"\xff\xfb\x90\x64", "audio/mpeg"),  # an MPEG-1 layer III frame, no ID3 tag
    (b"OggS\x00\x02", "audio/ogg"),
    (b"fLaC\x00\x00\x00\x22", "audio/flac"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "video/mp4"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00", "audio/mp4"),
]


@pytest.mark.parametrize(("head", "expected"), SAMPLES)
def test_the_first_bytes_tell_the_type(head: bytes, expected: str) -> None:
    assert sniff(head) == expected
    assert media_type("application/octet-stream", head) == expected
    assert media_type("image/png", head) == expected  # the bytes win over the declaration


@pytest.mark.parametrize(
    "head",
    [b"", b"hello world", b"RIFF\x10\x00\x00\x00AVI ", b"\xff\xf1\x50\x80"],  # AAC ADTS
    ids=["empty", "text", "avi", "aac"],
)
def test_unknown_bytes_fall_back_to_the_declared_type(head: bytes) -> None:
    assert sniff(head) is None
    assert media_type("Audio/AAC; rate=44100", head) == "audio/aac"
    assert media_type("", head) == "application/octet-stream"
    assert media_type("application/octet-stream", head) == "application/octet-stream"
