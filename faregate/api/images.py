"""`POST /v1/images/generations` and `/v1/images/edits`: the OpenAI Images API to clients,
with the seed fields and aliases."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from typing import Any

from faregate.api.common import (
    authenticate,
    balancer_metadata,
    cost_headers,
    form_body,
    json_body,
    request_id,
    routing_headers,
    wants_metadata,
)
from faregate.api.images_request import (
    parse_edit,
    parse_generation,
    reference_images,
    refs_of,
    response_format,
)
from faregate.billing.types import KeyRecord
from faregate.errors import FaregateError, ServiceUnavailable, UpstreamFailed
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.media.types import MediaTooLarge
from faregate.pipeline.images import Generated, generate
from faregate.pipeline.services import Services
from faregate.providers.image_bytes import image_type
from faregate.providers.image_types import GeneratedImage, ImageCall, ImageResult

OUTPUT_FORMATS = ("png", "jpeg", "webp")
log = logging.getLogger("faregate.images")


async def image_bytes(svc: Services, image: GeneratedImage) -> tuple[str, bytes]:
    """(media type, bytes) of a generated image: decoded, or fetched from the upstream's URL
    through the guarded fetcher."""
    if image.b64 is not None:
        return image.content_type, base64.b64decode(image.b64)
    assert image.url is not None
    try:
        _, data = await svc.fetcher.fetch(image.url)
    except FaregateError as exc:
        raise UpstreamFailed(
            f"The provider's image could not be fetched: {exc.message}", code="provider_error"
        ) from None
    kind = await asyncio.to_thread(image_type, data)
    if kind is None:
        raise UpstreamFailed("The provider's image link is not an image.", code="provider_error")
    return kind, data


async def b64_of(svc: Services, image: GeneratedImage) -> tuple[str, str]:
    """(media type, base64) of a generated image."""
    if image.b64 is not None:
        return image.content_type, image.b64
    kind, data = await image_bytes(svc, image)
    return kind, base64.b64encode(data).decode()


async def url_of(svc: Services, req: Request, key: KeyRecord, image: GeneratedImage) -> str:
    """A signed link to the image in the gateway's media store (an upstream's own URL too:
    its links expire or carry credentials)."""
    media = svc.media
    if media is None:
        raise ServiceUnavailable("The media store is not configured.", code="media_unavailable")
    kind, data = await image_bytes(svc, image)
    try:
        item = await media.save(data, kind, key.account_id)
    except (MediaTooLarge, OSError) as exc:
        log.warning("media store refused an image: %s", exc)
        raise ServiceUnavailable(
            "The media store could not keep the image.", code="media_unavailable"
        ) from None
    return media.url(item, req)


async def _items(
    svc: Services, req: Request, key: KeyRecord, result: ImageResult, fmt: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for image in result.images:
        item: dict[str, Any] = {}
        if fmt == "b64_json":
            item["b64_json"] = (await b64_of(svc, image))[1]
        else:
            item["url"] = await url_of(svc, req, key, image)
        if image.revised_prompt is not None:
            item["revised_prompt"] = image.revised_prompt
        out.append(item)
    return out


def _usage(call: ImageCall, done: Generated) -> dict[str, Any] | None:
    """OpenAI's image usage, when the upstream reported tokens."""
    reported = done.result.usage
    if reported is None:
        return None
    details = done.result.input_details
    if details is None:  # not reported: all text when no image was sent
        sent = bool(call.images or call.reference_images)
        details = {
            "text_tokens": 0 if sent else reported.prompt_tokens,
            "image_tokens": reported.prompt_tokens if sent else 0,
        }
    return {
        "input_tokens": reported.prompt_tokens,
        "output_tokens": reported.completion_tokens,
        "total_tokens": reported.prompt_tokens + reported.completion_tokens,
        "input_tokens_details": details,
    }


def image_metadata(svc: Services, done: Generated) -> dict[str, Any]:
    """The opt-in `_balancer` metadata of an image reply: the chat fields and `images_count`."""
    meta = balancer_metadata(svc, done.model, done.cost, done.usage, False)
    meta["images_count"] = len(done.result.images)
    return meta


async def _serve(
    svc: Services, req: Request, key: KeyRecord, call: ImageCall, fmt: str
) -> Response:
    items: list[dict[str, Any]] = []

    async def finish(result: ImageResult) -> None:  # before the settlement: a failure releases
        items.extend(await _items(svc, req, key, result, fmt))

    done = await generate(svc, key, call, finish)
    reply: dict[str, Any] = {"created": done.result.created or int(time.time()), "data": items}
    if call.output_format in OUTPUT_FORMATS:
        reply["output_format"] = call.output_format
    if call.background in ("transparent", "opaque"):
        reply["background"] = call.background
    usage = _usage(call, done)
    if usage is not None:
        reply["usage"] = usage
    if wants_metadata(req):
        reply["_balancer"] = image_metadata(svc, done)
    headers = {**cost_headers(svc, call.request_id, done.model, done.cost), **routing_headers(done)}
    return Response.json(reply, 200, headers)


def generations_handler(svc: Services) -> Callable[[Request], Any]:
    """`POST /v1/images/generations` (JSON)."""

    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        body = await json_body(svc, req)
        call = parse_generation(body, request_id())
        call.reference_images = await reference_images(svc, refs_of(body))
        return await _serve(svc, req, key, call, response_format(body))

    return handle


def edits_handler(svc: Services) -> Callable[[Request], Any]:
    """`POST /v1/images/edits` (multipart/form-data, as the OpenAI SDK sends it)."""

    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        call, fmt = await parse_edit(await form_body(svc, req), request_id())
        return await _serve(svc, req, key, call, fmt)

    return handle
