"""What the media store keeps: one item's metadata, and the refusal of an item over the cap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

    def as_dict(self) -> dict[str, Any]:
        """The item as JSON-ready fields (a sidecar file, a job's result)."""
        return {
            "id": self.id,
            "account_id": self.account_id,
            "content_type": self.content_type,
            "size": self.size,
            "created": self.created,
            "expires": self.expires,
        }


class MediaTooLarge(Exception):
    """The bytes passed the store's per-item cap; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the media item exceeds the store's cap of {limit} bytes")
        self.limit = limit
