"""Streamed responses: every chunk sent in order; a client that leaves stops the stream and
closes its iterator; a cancellation from outside still propagates. Bytes and files: their
type, length and disposition, sent in chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from faregate.errors import NotFound
from faregate.http.responses import (
    BytesStream,
    FileResponse,
    Response,
    StreamResponse,
    attachment,
)


class Client:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.leave = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def receive(self) -> dict[str, Any]:
        await self.leave.wait()
        return {"type": "http.disconnect"}


class Chunks:
    """An iterator that yields `ready` chunks, then waits for more (like a slow upstream)."""

    def __init__(self, ready: int, wait: bool) -> None:
        self.ready = ready
        self.wait = wait
        self.closed = False

    async def gen(self) -> AsyncIterator[bytes]:
        try:
            for i in range(self.ready):
                yield b"c%d" % i
            if self.wait:
                await asyncio.sleep(30)
        finally:
            self.closed = True


async def test_every_chunk_then_the_end() -> None:
    client, chunks = Client(), Chunks(3, wait=False)
    await StreamResponse(chunks.gen())(client.send, client.receive)
    bodies = [m.get("body") for m in client.sent[1:]]
    assert client.sent[0]["type"] == "http.response.start"
    assert bodies == [b"c0", b"c1", b"c2", b""]
    assert chunks.closed


async def test_a_client_that_leaves_stops_the_stream() -> None:
    client, chunks = Client(), Chunks(2, wait=True)
    task = asyncio.ensure_future(StreamResponse(chunks.gen())(client.send, client.receive))
    await asyncio.sleep(0.05)
    client.leave.set()
    await asyncio.wait_for(task, 5)  # returns normally: the departure is not an error
    assert chunks.closed
    assert [m.get("body") for m in client.sent[1:]] == [b"c0", b"c1"]


async def test_a_cancellation_from_outside_propagates() -> None:
    client, chunks = Client(), Chunks(1, wait=True)
    task = asyncio.ensure_future(StreamResponse(chunks.gen())(client.send, client.receive))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert chunks.closed


# -- bytes and files -------------------------------------------------------------------------


def headers_of(client: Client) -> dict[bytes, bytes]:
    return dict(client.sent[0]["headers"])


async def test_raw_bytes_carry_their_type_length_and_disposition() -> None:
    client = Client()
    reply = Response.raw(b"ID3audio", "audio/mpeg", disposition=attachment("speech.mp3"))
    await reply(client.send, client.receive)
    headers = headers_of(client)
    assert headers[b"content-type"] == b"audio/mpeg"
    assert headers[b"content-length"] == b"8"
    assert headers[b"content-disposition"] == b'attachment; filename="speech.mp3"'
    assert client.sent[1]["body"] == b"ID3audio"


def test_an_attachment_name_that_is_not_plain_ascii_is_also_given_encoded() -> None:
    assert attachment('vidéo "1".mp4') == (
        "attachment; filename=\"vid_o _1_.mp4\"; filename*=UTF-8''vid%C3%A9o%20%221%22.mp4"
    )


async def test_a_bytes_stream_sends_each_chunk_as_it_comes_with_no_length_unless_known() -> None:
    client, chunks = Client(), Chunks(3, wait=False)
    await BytesStream(chunks.gen(), "audio/wav")(client.send, client.receive)
    headers = headers_of(client)
    assert headers[b"content-type"] == b"audio/wav"
    assert b"content-length" not in headers  # the server sends it chunked
    assert [m.get("body") for m in client.sent[1:]] == [b"c0", b"c1", b"c2", b""]
    assert all(m["more_body"] for m in client.sent[1:-1])

    client = Client()
    await BytesStream(Chunks(2, wait=False).gen(), "video/mp4", length=4)(
        client.send, client.receive
    )
    assert headers_of(client)[b"content-length"] == b"4"


async def test_a_client_that_leaves_stops_a_bytes_stream() -> None:
    client, chunks = Client(), Chunks(2, wait=True)
    reply = BytesStream(chunks.gen(), "audio/mpeg")
    task = asyncio.ensure_future(reply(client.send, client.receive))
    await asyncio.sleep(0.05)
    client.leave.set()
    await asyncio.wait_for(task, 5)
    assert chunks.closed
    assert [m.get("body") for m in client.sent[1:]] == [b"c0", b"c1"]


CONTENT = bytes(range(256)) * 10


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(CONTENT)
    return path


async def test_a_file_is_streamed_in_chunks_with_its_length_and_type(video: Path) -> None:
    client = Client()
    await FileResponse(video, chunk_size=1000)(client.send, client.receive)
    headers = headers_of(client)
    assert headers[b"content-type"] == b"video/mp4"
    assert headers[b"content-length"] == b"2560"
    assert b"content-disposition" not in headers
    bodies = [m.get("body") for m in client.sent[1:]]
    assert [len(b) for b in bodies] == [1000, 1000, 560, 0]
    assert b"".join(bodies) == CONTENT


async def test_a_file_takes_the_type_and_name_it_is_given(video: Path) -> None:
    client = Client()
    reply = FileResponse(video, "application/x-custom", filename="out.mp4")
    await reply(client.send, client.receive)
    headers = headers_of(client)
    assert headers[b"content-type"] == b"application/x-custom"
    assert headers[b"content-disposition"] == b'attachment; filename="out.mp4"'


def test_a_file_of_no_known_type_is_octet_stream(tmp_path: Path) -> None:
    unknown = tmp_path / "blob"
    unknown.write_bytes(b"x")
    assert dict(FileResponse(unknown).headers)[b"content-type"] == b"application/octet-stream"


def test_a_missing_file_is_a_404(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        FileResponse(tmp_path / "gone.mp4")


async def test_a_client_that_leaves_stops_reading_the_file(video: Path) -> None:
    sent: list[dict[str, Any]] = []
    left = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if len(sent) == 2:
            left.set()
            await asyncio.sleep(30)  # a slow client: the departure cancels the wait

    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    await asyncio.wait_for(FileResponse(video, chunk_size=100)(send, receive), 5)
    assert len(sent) == 2  # the head and the first chunk; the other 25 never read
