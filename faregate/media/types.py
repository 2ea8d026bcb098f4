"""What the media store keeps: one item's metadata, and the refusal of an item over the cap."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One stored file. `created` and `expires` are Unix times; past `expires` the item is no
    longer served and the sweeper may delete it."""

    id: str
    account_id: str
    content_type: str
    size: int
    created: float
    expires: float


class MediaTooLarge(Exception):
    """The bytes passed the store's per-item cap; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the media item exceeds the store's cap of {limit} bytes")
        self.limit = limit
