"""`Idempotency-Key` on client requests: one run upstream, one bill, replays of the result.

The same key from the same API key runs once; a replay returns the stored status, headers and
body (a stream's whole transcript) with `idempotent-replayed: true`; a duplicate that arrives
while the first still runs gets 409, and the key reused with another body gets 422. A run
that fails in a way worth retrying (5xx, 408, 429) leaves no record, so the client may retry
under the same key.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable

from faregate.api.common import authenticate
from faregate.api.envelopes import render_error
from faregate.billing.store import StoredResult
from faregate.billing.types import KeyRecord
from faregate.errors import BadRequest, Conflict, FaregateError, ValidationFailed
from faregate.http.multipart import boundary_of
from faregate.http.request import Request
from faregate.http.responses import Response, StreamResponse
from faregate.pipeline.services import Services

HEADER = "idempotency-key"
MAX_KEY = 255
RETRYABLE = frozenset({408, 429})

Handler = Callable[[Request], Awaitable[Response | StreamResponse]]


def _text_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    skip = {b"content-length"}
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k not in skip]


def _replay(stored: StoredResult) -> Response:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers]
    headers.append((b"idempotent-replayed", b"true"))
    return Response(stored.body, stored.status, headers)


def _comparable(req: Request, body: bytes) -> bytes:
    """The body as two sends of one request compare: a form without its boundary, which a
    client picks anew for every send."""
    content_type = req.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        with contextlib.suppress(BadRequest):
            return body.replace(boundary_of(content_type), b"")
    return body


async def run_idempotent(
    svc: Services, req: Request, protocol: str, handler: Handler
) -> Response | StreamResponse:
    """Run `handler` under the request's Idempotency-Key."""
    idem = req.headers[HEADER]
    if not idem or len(idem) > MAX_KEY:
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY} characters.", code="invalid_idempotency_key"
        )
    key: KeyRecord = await authenticate(svc, req)
    body = await req.body(svc.config.server.max_body_bytes)
    digest = hashlib.sha256(_comparable(req, body)).hexdigest()
    ttl_ms = svc.config.idempotency.ttl_seconds * 1000
    running_ms = svc.config.billing.hold_ttl_seconds * 1000  # no request outlives its hold
    claim = await svc.store.idem_claim(key.id, idem, digest, ttl_ms, running_ms)
    if isinstance(claim, StoredResult):
        return _replay(claim)
    if claim == "running":
        raise Conflict(
            "A request with this Idempotency-Key is still running.", code="idempotency_conflict"
        )
    if claim == "mismatch":
        raise ValidationFailed(
            "This Idempotency-Key was already used with a different request body.",
            code="idempotency_key_reused",
        )
    try:
        response = await handler(req)
    except FaregateError as exc:
        if exc.status >= 500 or exc.status in RETRYABLE:
            await svc.store.idem_forget(key.id, idem)
        else:
            rendered = render_error(protocol, exc)
            await svc.store.idem_finish(
                key.id,
                idem,
                StoredResult(rendered.status, _text_headers(rendered.headers), rendered.body),
            )
        raise
    except BaseException:
        await svc.store.idem_forget(key.id, idem)
        raise
    if isinstance(response, Response):
        await svc.store.idem_finish(
            key.id,
            idem,
            StoredResult(response.status, _text_headers(response.headers), response.body),
        )
        return response
    return StreamResponse(_recorded(svc, key.id, idem, response), response.status, response.headers)


async def _recorded(
    svc: Services, key_id: str, idem: str, response: StreamResponse
) -> AsyncIterator[bytes]:
    """The stream's chunks, forwarded as they come and kept; the transcript (whole, or as far
    as it went: it was billed) becomes the stored result."""
    kept: list[bytes] = []
    chunks = response.chunks
    try:
        async for chunk in chunks:
            kept.append(chunk)
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await svc.store.idem_finish(
            key_id,
            idem,
            StoredResult(response.status, _text_headers(response.headers), b"".join(kept)),
        )
