"""`Media`: what the routes use of the media store: save bytes, sign a URL, check and open one."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence

from faregate.auth import restrictions
from faregate.errors import PermissionDenied
from faregate.http.request import Request
from faregate.media.config import MediaConfig
from faregate.media.signing import Signer
from faregate.media.store import MediaStore
from faregate.media.types import MediaItem

log = logging.getLogger("faregate.media")

EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "audio/flac": ".flac",
    "audio/aac": ".aac",
    "audio/pcm": ".pcm",
    "audio/l16": ".pcm",
    "text/plain": ".txt",
    "text/vtt": ".vtt",
    "application/x-subrip": ".srt",
    "application/json": ".json",
}
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_EXPIRES = re.compile(r"[0-9]{1,12}")
_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
FALLBACK_TYPE = "application/octet-stream"


def media_type(content_type: str) -> str:
    """The bare media type (`image/png`) of a content type, lower-cased; a malformed one is
    stored as `application/octet-stream`, so no header can be smuggled through it."""
    base = content_type.partition(";")[0].strip().lower()
    return base if _TYPE.fullmatch(base) and len(base) <= 127 else FALLBACK_TYPE


def extension(content_type: str) -> str:
    """The file extension of a content type (`.png`, `.mp4`, `.mp3`...), or "" when unknown."""
    base = content_type.partition(";")[0].strip().lower()
    found = EXTENSIONS.get(base) or mimetypes.guess_extension(base, strict=True) or ""
    return found if re.fullmatch(r"\.[a-z0-9]{1,8}", found) else ""


class Media:
    """The media store behind signed, expiring URLs:
    `{base}/v1/media/{id}{ext}?expires={unix}&signature={hex}`."""

    def __init__(
        self,
        store: MediaStore,
        signer: Signer,
        config: MediaConfig,
        trusted_proxies: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.signer = signer
        self.config = config
        self._trusted = restrictions.networks(tuple(trusted_proxies))
        self._clock = clock

    async def save(
        self,
        data: bytes | AsyncIterable[bytes],
        content_type: str,
        account_id: str,
        *,
        retention_seconds: float | None = None,
    ) -> MediaItem:
        """Store the bytes for `retention_seconds` (default `[media] retention_seconds`);
        `MediaTooLarge` over `max_bytes`, nothing kept."""
        keep = self.config.retention if retention_seconds is None else retention_seconds
        return await self.store.put(
            data,
            content_type=media_type(content_type),
            account_id=account_id,
            retention_seconds=keep,
        )

    def url(self, item: MediaItem, req: Request) -> str:
        """The absolute signed URL of `item`, valid for `url_ttl_seconds` (never past the
        item's own expiry)."""
        return self.base_url(req) + self.signed_path(item)

    def signed_path(self, item: MediaItem) -> str:
        """`/v1/media/{id}{ext}?expires=...&signature=...`, without scheme and host."""
        expires = min(int(self._clock()) + self.config.url_ttl_seconds, int(item.expires))
        signature = self.signer.sign(item.id, expires)
        ext = extension(item.content_type)
        return f"/v1/media/{item.id}{ext}?expires={expires}&signature={signature}"

    def base_url(self, req: Request) -> str:
        """`[media] public_base_url`, else the request's scheme and host; a trusted proxy's
        `X-Forwarded-Proto` and `X-Forwarded-Host` count."""
        if self.config.public_base_url:
            return self.config.public_base_url
        headers = req.headers
        scheme = str(req.scope.get("scheme") or "http")
        host = headers.get("host", "")
        peer = restrictions.parse_ip(req.client_host or "")
        if peer is not None and any(peer in net for net in self._trusted):
            proto = _last(headers.get("x-forwarded-proto"))
            if proto in ("http", "https"):
                scheme = proto
            forwarded = _last(headers.get("x-forwarded-host"))
            if forwarded:
                host = forwarded
        if scheme not in ("http", "https"):
            scheme = "https" if scheme == "wss" else "http"
        if not _HOST.fullmatch(host):
            server = req.scope.get("server") or ("127.0.0.1", 80)
            host = _host_port(str(server[0]), server[1])
        return f"{scheme}://{host}"

    def check(self, media_id: str, expires: str | None, signature: str | None) -> int:
        """The seconds a signed link has left; 403 when the signature is missing, wrong or
        expired."""
        if not expires or not signature or not _EXPIRES.fullmatch(expires):
            raise PermissionDenied(
                "This media URL is not signed; use the URL exactly as returned.",
                code="invalid_signature",
            )
        until = int(expires)
        if not self.signer.valid(media_id, until, signature):
            raise PermissionDenied(
                "The media URL's signature does not match; use the URL exactly as returned.",
                code="invalid_signature",
            )
        left = until - int(self._clock())
        if left <= 0:
            raise PermissionDenied("The media URL has expired.", code="expired_url")
        return left

    async def open(self, media_id: str) -> tuple[MediaItem, AsyncIterator[bytes]] | None:
        return await self.store.open(media_id)

    async def close(self) -> None:
        """Close the backend's connections, if it keeps any."""
        close = getattr(self.store, "close", None)
        if close is not None:
            await close()

    async def sweep(self) -> int:
        deleted = await self.store.sweep(self._clock())
        if deleted:
            log.info("deleted %d expired media item(s)", deleted)
        return deleted

    async def sweep_forever(self) -> None:
        """Sweep every `sweep_interval_seconds` until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("media sweep failed; retrying")
            await asyncio.sleep(self.config.sweep_interval_seconds)


def _last(value: str | None) -> str:
    """The value the nearest proxy set (the last of a comma-separated list)."""
    return value.rsplit(",", 1)[-1].strip() if value else ""


def _host_port(host: str, port: object) -> str:
    if ":" in host:
        host = f"[{host}]"
    return host if port in (80, 443, None) else f"{host}:{port}"
