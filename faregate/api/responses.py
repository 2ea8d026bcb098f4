"""The Responses API to clients: `POST /v1/responses`, and stored responses by id.

Any chat model of the catalog can be used, whatever its upstream protocol: the request is
turned into the hub chat call (`responses_request.py`), run through the same pipeline as an
OpenAI chat call (billing, limits, fallback, the response cache, idempotency and the cost
headers as chat), and the hub reply or stream is rendered back (`responses_render.py`,
`responses_stream.py`). A deployment on the `openai-responses` protocol is sent the client's
own request and its reply or events are forwarded under the gateway's ids.

With `store` (default true) the response is kept for the key's account
(`responses_store.py`): `previous_response_id` continues from it, and it can be read,
listed (`input_items`) and deleted. Another account's id, an expired or unknown one is 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from functools import partial
from typing import Any

import orjson

from faregate.api.common import (
    authenticate,
    cost_headers,
    json_body,
    request_id,
    routing_headers,
    usage_cost,
)
from faregate.api.responses_render import from_hub, from_native, response_object
from faregate.api.responses_request import ResponsesRequest, check_top_level, to_request
from faregate.api.responses_store import ResponseStore
from faregate.api.responses_stream import StreamRenderer
from faregate.billing.types import KeyRecord
from faregate.db.engine import AdminDB
from faregate.errors import BadRequest, FaregateError, NotFound
from faregate.http.request import Request
from faregate.http.responses import SSE_HEADERS, Response, StreamResponse, header_list
from faregate.pipeline.chat import OpenStream, complete, open_stream
from faregate.pipeline.services import Services
from faregate.providers.native import NativeEvent

NATIVE = "openai-responses"


def _not_found(response_id: str, param: str | None = None) -> NotFound:
    return NotFound(
        f"Response with id '{response_id}' not found.", code="response_not_found", param=param
    )


class ResponsesAPI:
    """The handlers of the Responses routes, sharing one store."""

    def __init__(self, svc: Services, db: AdminDB) -> None:
        self.svc = svc
        self.store = ResponseStore(db, svc.config.responses.retention_days)

    async def create(self, req: Request) -> Response | StreamResponse:
        svc = self.svc
        rid = request_id()
        key = await authenticate(svc, req)
        body = await json_body(svc, req)
        check_top_level(body)
        prev = body.get("previous_response_id")
        prefix: list[dict[str, Any]] = []
        if isinstance(prev, str):
            stored = await self.store.get(prev, key.account_id)
            if stored is None:
                raise _not_found(prev, "previous_response_id")
            prefix = stored.context
        parsed = to_request(body, rid, prefix)
        call = parsed.call
        if call.stream:
            stream = await open_stream(svc, key, call)
            base = self._base(parsed, rid, stream.model)
            headers = {**cost_headers(svc, rid, stream.model, None), **routing_headers(stream)}
            events = self._events(
                stream, StreamRenderer(base, rid, partial(usage_cost, svc)), key, parsed, prefix
            )
            return StreamResponse(events, 200, SSE_HEADERS + header_list(headers))
        done = await complete(svc, key, call)
        args: dict[str, Any] = {
            "request_id": rid,
            "model": done.model,
            "previous_response_id": parsed.previous_response_id,
            "store": parsed.store,
        }
        raw = done.result.raw
        if done.deployment is not None and done.deployment.adapter.name == NATIVE and raw:
            response = from_native(orjson.loads(raw), done.usage, parsed.echo, **args)
        else:
            response = from_hub(done.result.body, done.usage, parsed.echo, **args)
        if isinstance(response.get("usage"), dict):
            response["usage"] = {**response["usage"], **usage_cost(svc, done.cost)}
        await self._keep(key, parsed, prefix, response)
        headers = {**cost_headers(svc, rid, done.model, done.cost), **routing_headers(done)}
        return Response.json(response, 200, headers)

    def _base(self, parsed: ResponsesRequest, rid: str, model: str) -> dict[str, Any]:
        return response_object(
            parsed.echo,
            request_id=rid,
            model=model,
            status="in_progress",
            output=[],
            usage=None,
            previous_response_id=parsed.previous_response_id,
            store=parsed.store,
        )

    async def _keep(
        self,
        key: KeyRecord,
        parsed: ResponsesRequest,
        prefix: list[dict[str, Any]],
        response: dict[str, Any],
    ) -> None:
        if not parsed.store or response.get("status") == "failed":
            return
        output = response.get("output") or []
        context = [*prefix, *parsed.items, *output]
        await self.store.save(key.account_id, response, parsed.items, context)

    async def _events(
        self,
        stream: OpenStream,
        renderer: StreamRenderer,
        key: KeyRecord,
        parsed: ResponsesRequest,
        prefix: list[dict[str, Any]],
    ) -> AsyncIterator[bytes]:
        """The pipeline's events as typed Responses events; the finished response is stored."""
        native = stream.deployment.adapter.name == NATIVE
        if not native:
            for chunk in renderer.start():
                yield chunk
        ended = False
        async with aclosing(stream.events) as events:
            async for event in events:
                if isinstance(event, FaregateError):
                    for chunk in renderer.fail(event):
                        yield chunk
                    return
                if native:
                    if isinstance(event, NativeEvent) and event.native is not None:
                        yield renderer.passthrough(event.native, event.cost)
                    continue
                chunks = renderer.end() if event.data is None else renderer.feed(event)
                ended = ended or event.data is None
                for chunk in chunks:
                    yield chunk
        if not native and not ended:
            for chunk in renderer.end():
                yield chunk
        if renderer.final is not None:
            await self._keep(key, parsed, prefix, renderer.final)

    async def retrieve(self, req: Request) -> Response:
        key = await authenticate(self.svc, req)
        response_id = req.params["response_id"]
        if req.query.get("stream") in ("true", "1"):
            raise BadRequest(
                "Streaming a stored response again is not supported by this gateway.",
                code="unsupported_parameter",
                param="stream",
            )
        stored = await self.store.get(response_id, key.account_id)
        if stored is None:
            raise _not_found(response_id)
        return Response.json(stored.response)

    async def delete(self, req: Request) -> Response:
        key = await authenticate(self.svc, req)
        response_id = req.params["response_id"]
        if not await self.store.delete(response_id, key.account_id):
            raise _not_found(response_id)
        return Response.json({"id": response_id, "object": "response.deleted", "deleted": True})

    async def input_items(self, req: Request) -> Response:
        key = await authenticate(self.svc, req)
        response_id = req.params["response_id"]
        query = req.query
        limit_raw = query.get("limit", "20")
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 100:
            raise BadRequest("'limit' must be an integer from 1 to 100.", param="limit")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadRequest("'order' must be asc or desc.", param="order")
        stored = await self.store.get(response_id, key.account_id)
        if stored is None:
            raise _not_found(response_id)
        items = stored.input_items if order == "asc" else stored.input_items[::-1]
        after = query.get("after")
        if after:
            ids = [i.get("id") for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[: int(limit_raw)]
        return Response.json(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > len(page),
            }
        )


def handlers(svc: Services, db: AdminDB) -> dict[str, Callable[[Request], Any]]:
    """The route handlers by name (one store shared by them)."""
    api = ResponsesAPI(svc, db)
    return {
        "create": api.create,
        "retrieve": api.retrieve,
        "delete": api.delete,
        "input_items": api.input_items,
    }
