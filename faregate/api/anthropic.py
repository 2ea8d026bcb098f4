"""The Anthropic-native client protocol: `POST /v1/messages` and `/v1/messages/count_tokens`.

Any model of the catalog can be used, whatever its upstream protocol: the request is turned
into the hub chat call (`anthropic_request.py`), run through the same pipeline as an OpenAI
chat call, and the hub reply or stream is rendered back (`anthropic_render.py`). The key may
come in `x-api-key` or `Authorization: Bearer`; errors use Anthropic's envelope. Non-streaming
replies carry the cost headers of `api.common.cost_headers`; every reply carries the routing
headers and `request-id`.

`count_tokens` answers `{"input_tokens": n}` with the gateway's own estimate
(`faregate.tokens.count_messages` of the translated messages and tools), not the upstream's
tokenizer; it checks the key and the model but neither calls the upstream nor charges.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from faregate import tokens
from faregate.api.anthropic_render import StreamRenderer, error_event, render_message
from faregate.api.anthropic_request import to_call
from faregate.api.common import (
    authenticate,
    cost_headers,
    json_body,
    request_id,
    routing_headers,
)
from faregate.api.output_cap import clamp_headers
from faregate.errors import BadRequest, FaregateError, ValidationFailed
from faregate.http.request import Request
from faregate.http.responses import SSE_HEADERS, Response, StreamResponse, header_list
from faregate.pipeline.admission import check_model_allowed
from faregate.pipeline.chat import OpenStream, complete, open_stream
from faregate.pipeline.services import Services
from faregate.providers.base import ChatCall


async def _body(svc: Services, req: Request) -> dict[str, Any]:
    """The JSON body; Anthropic answers a body that is not JSON with a 400."""
    try:
        return await json_body(svc, req)
    except ValidationFailed as exc:
        raise BadRequest(exc.message, code=exc.code) from None


def _input_estimate(call: ChatCall) -> int:
    return tokens.count_messages(call.body.get("messages") or [], call.body.get("tools"))


async def _events(stream: OpenStream, call: ChatCall) -> AsyncIterator[bytes]:
    """The pipeline's events as Anthropic SSE; a failure after the first byte ends the stream
    with `event: error`."""
    renderer = StreamRenderer(call.model, call.request_id, _input_estimate(call))
    ended = False
    async with aclosing(stream.events) as events:
        async for event in events:
            if isinstance(event, FaregateError):
                yield error_event(event)
                return
            # the end marker closes the message; the pipeline then finishes (and settles)
            chunks = renderer.end() if event.data is None else renderer.feed(event)
            ended = ended or event.data is None
            for chunk in chunks:
                yield chunk
    if not ended:
        for chunk in renderer.end():
            yield chunk


def messages_handler(svc: Services) -> Callable[[Request], Any]:
    async def handle(req: Request) -> Response | StreamResponse:
        rid = request_id()
        key = await authenticate(svc, req)
        call = to_call(await _body(svc, req), rid)
        if call.stream:
            stream = await open_stream(svc, key, call)
            extra = {
                **cost_headers(svc, rid, stream.model, None),
                **routing_headers(stream),
                **clamp_headers(svc, call, stream.model),
                "request-id": rid,
            }
            return StreamResponse(_events(stream, call), 200, SSE_HEADERS + header_list(extra))
        done = await complete(svc, key, call)
        message = render_message(done.result.body, done.usage, call.model, rid)
        headers = {
            **cost_headers(svc, rid, done.model, done.cost),
            **routing_headers(done),
            **clamp_headers(svc, call, done.model),
            "request-id": rid,
        }
        return Response.json(message, 200, headers)

    return handle


def count_tokens_handler(svc: Services) -> Callable[[Request], Any]:
    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        call = to_call(await _body(svc, req), request_id(), counting=True)
        svc.catalog.get(call.model)
        check_model_allowed(key, call.model)
        return Response.json({"input_tokens": _input_estimate(call)})

    return handle
