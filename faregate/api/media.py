"""`GET` / `HEAD /v1/media/{id}{ext}`: a stored media file, for whoever holds its signed URL."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faregate.errors import NotFound
from faregate.http.request import Request
from faregate.http.responses import BytesStream
from faregate.http.router import Handler
from faregate.pipeline.services import Services


def media_handler(svc: Services) -> Handler:
    """No API key: the signature is the credential (403 when missing, wrong or expired; 404
    for an id the store does not have, or no longer serves)."""

    async def handle(req: Request) -> BytesStream:
        media = svc.media
        if media is None:
            raise NotFound("This gateway keeps no media.", code="media_not_found")
        media_id = req.params.get("media_id", "").partition(".")[0]
        left = media.check(media_id, req.query.get("expires"), req.query.get("signature"))
        found = await media.open(media_id)
        if found is None:
            raise NotFound("The media item does not exist or has expired.", code="media_not_found")
        item, chunks = found
        if req.method == "HEAD":
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            chunks = _empty()
        response = BytesStream(chunks, item.content_type, length=item.size, disposition="inline")
        response.headers += [
            (b"cache-control", f"private, max-age={left}".encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        return response

    return handle


async def _empty() -> AsyncIterator[bytes]:
    return
    yield
