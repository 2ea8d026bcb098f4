"""The request body: streamed chunk by chunk as it arrives, refused once past its cap, and a
body already read whole served again under the same cap."""

from __future__ import annotations

from typing import Any

import pytest

from faregate.errors import PayloadTooLarge
from faregate.http.request import Request


def request(chunks: list[bytes], headers: dict[str, str] | None = None) -> Request:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw}, receive)


async def test_the_body_streams_chunk_by_chunk() -> None:
    req = request([b"ab", b"", b"cd", b"e"])
    assert [c async for c in req.stream(100)] == [b"ab", b"cd", b"e"]


async def test_a_stream_is_refused_once_past_its_cap() -> None:
    req = request([b"a" * 60, b"b" * 60, b"c"])
    got: list[bytes] = []

    async def drain() -> None:
        async for chunk in req.stream(100):
            got.append(chunk)

    with pytest.raises(PayloadTooLarge):
        await drain()
    assert got == [b"a" * 60]  # refused before the second chunk is handed on


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    req = request([b"x"], {"content-length": "1000"})
    with pytest.raises(PayloadTooLarge):
        await req.body(100)


async def test_a_client_that_leaves_ends_the_stream() -> None:
    messages = [{"type": "http.request", "body": b"ab", "more_body": True}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    req = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
    assert [c async for c in req.stream(100)] == [b"ab"]


async def test_a_body_read_whole_streams_again_under_the_cap() -> None:
    req = request([b"abc", b"def"])
    assert await req.body(100) == b"abcdef"
    assert [c async for c in req.stream(100)] == [b"abcdef"]
    with pytest.raises(PayloadTooLarge):
        [c async for c in req.stream(4)]
