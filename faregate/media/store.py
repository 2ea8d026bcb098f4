"""The media store's protocol, shared by every backend, and the helpers they share."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

from faregate.media.types import MediaItem, MediaTooLarge

ID_BYTES = 24
"""Random bytes in an id: 192 bits, 32 URL-safe characters."""
_ID = re.compile(r"[A-Za-z0-9_-]{32}")


class MediaStore(Protocol):
    async def put(
        self,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        account_id: str,
        retention_seconds: float,
    ) -> MediaItem:
        """Store `data` chunk by chunk under a new random id; `MediaTooLarge` (and nothing
        kept) once it passes the store's cap."""
        ...

    async def open(self, media_id: str) -> tuple[MediaItem, AsyncIterator[bytes]] | None:
        """The item and its bytes in chunks; None when unknown or past its `expires`."""
        ...

    async def delete(self, media_id: str) -> bool:
        """Delete the item; False when there was none."""
        ...

    async def sweep(self, now: float) -> int:
        """Delete every item whose `expires` has passed; how many were deleted."""
        ...


def new_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def valid_id(media_id: str) -> bool:
    """Whether `media_id` has the shape of an id (so it is safe as a file or object name)."""
    return _ID.fullmatch(media_id) is not None


async def capped(data: bytes | AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """The chunks of `data`, raising `MediaTooLarge` as soon as their total passes `limit`."""
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) > limit:
            raise MediaTooLarge(limit)
        if data:
            yield bytes(data)
        return
    total = 0
    async for chunk in data:
        total += len(chunk)
        if total > limit:
            raise MediaTooLarge(limit)
        if chunk:
            yield chunk
