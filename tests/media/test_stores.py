"""What every media store backend does: stream in and out, random ids, expiry, delete, sweep,
and the size cap that leaves nothing behind."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from faregate.media.local import LocalMediaStore
from faregate.media.s3 import S3MediaStore
from faregate.media.types import MediaItem, MediaTooLarge

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read(store: Any, media_id: str) -> tuple[MediaItem, list[bytes]] | None:
    found = await store.open(media_id)
    if found is None:
        return None
    item, body = found
    return item, [chunk async for chunk in body]


async def leftovers(store: Any) -> list[str]:
    """Every file or object (or open upload) the store holds."""
    if isinstance(store, LocalMediaStore):
        if not store.directory.exists():
            return []
        return [str(p) for p in store.directory.rglob("*") if p.is_file()]
    client = await store._s3()
    listed = await client.list_objects_v2(Bucket=store.bucket)
    uploads = await client.list_multipart_uploads(Bucket=store.bucket)
    return [o["Key"] for o in listed.get("Contents", ())] + [
        u["Key"] for u in uploads.get("Uploads", ())
    ]


async def test_bytes_go_in_and_come_back_with_their_metadata(backend: Any) -> None:
    before = time.time()
    item = await backend.put(
        PNG, content_type="image/png", account_id="acct_1", retention_seconds=600
    )
    assert (item.account_id, item.content_type, item.size) == ("acct_1", "image/png", len(PNG))
    assert before <= item.created <= time.time()
    assert item.expires == pytest.approx(item.created + 600, abs=1)
    got = await read(backend, item.id)
    assert got is not None
    stored, body = got
    assert b"".join(body) == PNG
    assert (stored.id, stored.account_id, stored.content_type, stored.size) == (
        item.id,
        "acct_1",
        "image/png",
        len(PNG),
    )
    assert stored.expires == pytest.approx(item.expires, abs=0.01)


async def test_a_stream_is_stored_whole_and_read_back_in_chunks(backend: Any) -> None:
    parts = [bytes([i]) * 50_000 for i in range(7)]  # 350 kB in uneven pieces
    item = await backend.put(
        chunks(*parts), content_type="audio/mpeg", account_id="a", retention_seconds=60
    )
    assert item.size == 350_000
    got = await read(backend, item.id)
    assert got is not None
    assert b"".join(got[1]) == b"".join(parts)
    assert len(got[1]) > 1  # streamed, not handed over whole
    assert max(len(c) for c in got[1]) <= 64 * 1024


async def test_ids_are_random_url_safe_and_long(backend: Any) -> None:
    ids = [
        (
            await backend.put(b"x", content_type="text/plain", account_id="a", retention_seconds=60)
        ).id
        for _ in range(5)
    ]
    assert len(set(ids)) == 5
    for media_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", media_id)  # 192 bits


async def test_an_empty_item_is_kept(backend: Any) -> None:
    item = await backend.put(b"", content_type="text/plain", account_id="a", retention_seconds=60)
    got = await read(backend, item.id)
    assert got is not None
    assert (got[0].size, b"".join(got[1])) == (0, b"")


@pytest.mark.parametrize("media_id", ["nope", "A" * 32, "../" * 11 + "etc", "", "a/b" * 11])
async def test_unknown_or_malformed_ids_are_not_found(backend: Any, media_id: str) -> None:
    await backend.put(b"x", content_type="text/plain", account_id="a", retention_seconds=60)
    assert await backend.open(media_id) is None
    assert await backend.delete(media_id) is False


async def test_bytes_over_the_cap_are_refused_and_nothing_is_kept(backend: Any) -> None:
    with pytest.raises(MediaTooLarge):
        await backend.put(
            bytes(backend.max_bytes + 1),
            content_type="video/mp4",
            account_id="a",
            retention_seconds=60,
        )
    assert await leftovers(backend) == []


async def test_a_stream_passing_the_cap_midway_leaves_nothing_behind(backend: Any) -> None:
    """The cap is crossed after parts were already written (an S3 upload under way)."""
    piece = bytes(1024 * 1024)
    with pytest.raises(MediaTooLarge):
        await backend.put(
            chunks(*[piece] * 13), content_type="video/mp4", account_id="a", retention_seconds=60
        )
    assert await leftovers(backend) == []


async def test_an_item_at_the_cap_is_kept(backend: Any) -> None:
    """Exactly the cap, in pieces: on S3 a multipart upload of several parts."""
    piece = bytes(range(256)) * 4096  # 1 MiB
    item = await backend.put(
        chunks(*[piece] * 12), content_type="video/mp4", account_id="a", retention_seconds=60
    )
    assert item.size == backend.max_bytes == 12 * 1024 * 1024
    got = await read(backend, item.id)
    assert got is not None
    assert got[0].size == item.size
    assert b"".join(got[1]) == piece * 12


async def test_a_failing_source_leaves_nothing_behind(backend: Any) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield bytes(6 * 1024 * 1024)
        raise ConnectionResetError("upstream went away")

    with pytest.raises(ConnectionResetError):
        await backend.put(broken(), content_type="video/mp4", account_id="a", retention_seconds=60)
    assert await leftovers(backend) == []


async def test_an_expired_item_is_not_served(backend: Any) -> None:
    item = await backend.put(b"x", content_type="text/plain", account_id="a", retention_seconds=0)
    assert await backend.open(item.id) is None


async def test_delete_removes_the_item_once(backend: Any) -> None:
    item = await backend.put(PNG, content_type="image/png", account_id="a", retention_seconds=60)
    assert await backend.delete(item.id) is True
    assert await backend.open(item.id) is None
    assert await backend.delete(item.id) is False
    assert await leftovers(backend) == []


async def test_sweep_deletes_exactly_the_expired_items(backend: Any) -> None:
    short = await backend.put(b"s", content_type="text/plain", account_id="a", retention_seconds=60)
    long = await backend.put(b"l", content_type="text/plain", account_id="a", retention_seconds=600)
    assert await backend.sweep(time.time()) == 0
    assert await backend.sweep(time.time() + 120) == 1
    assert await backend.open(short.id) is None
    kept = await read(backend, long.id)
    assert kept is not None
    assert b"".join(kept[1]) == b"l"
    assert await backend.sweep(time.time() + 1200) == 1
    assert await leftovers(backend) == []


async def test_a_reader_closed_early_releases_the_item(backend: Any) -> None:
    item = await backend.put(
        bytes(300_000), content_type="video/mp4", account_id="a", retention_seconds=60
    )
    found = await backend.open(item.id)
    assert found is not None
    body = found[1]
    assert len(await anext(body)) > 0
    await body.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(body)
    assert await backend.delete(item.id) is True


def test_the_backends_are_the_ones_under_test(backend: Any) -> None:
    assert isinstance(backend, LocalMediaStore | S3MediaStore)
