"""`GET /v1/models` and `/v1/models/{id}` in Anthropic's shape, for a client that speaks
Anthropic's API (`anthropic-version`; the key in `x-api-key` or a bearer token): the chat
models the key may use, newest first, paged with `limit`, `after_id` and `before_id`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faregate.api.common import authenticate
from faregate.api.envelopes import render_error
from faregate.errors import BadRequest, FaregateError, NotFound
from faregate.http.request import Request
from faregate.http.responses import Response, StreamResponse
from faregate.http.router import Handler
from faregate.kinds import Kind
from faregate.pipeline.services import Services
from faregate.routing.catalog import ModelEntry

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def anthropic_client(req: Request) -> bool:
    """Whether the caller speaks Anthropic's API: it sends `anthropic-version` (the `anthropic`
    SDK always does, with its key in `x-api-key` or `Authorization: Bearer`)."""
    return "anthropic-version" in req.headers


def _card(entry: ModelEntry) -> dict[str, Any]:
    created = datetime.fromtimestamp(entry.created, UTC)
    return {
        "type": "model",
        "id": entry.name,
        "display_name": entry.name,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _visible(svc: Services, allowed: frozenset[str] | None) -> list[ModelEntry]:
    entries = [
        entry
        for name, entry in svc.catalog.models.items()
        if entry.kind is Kind.CHAT and (allowed is None or name in allowed)
    ]
    return sorted(entries, key=lambda e: (-e.created, e.name))


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(
            f"limit: Input should be an integer from 1 to {MAX_LIMIT}", code="invalid_value"
        )
    return int(raw)


def _position(ids: list[str], name: str, value: str) -> int:
    try:
        return ids.index(value)
    except ValueError:
        raise BadRequest(f"{name}: no model with id '{value}'", code="invalid_value") from None


def page(entries: list[ModelEntry], query: dict[str, str]) -> dict[str, Any]:
    """One page of the list: after `after_id`, or the `limit` models just before
    `before_id`, or the first `limit`."""
    limit = _limit(query.get("limit"))
    ids = [e.name for e in entries]
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise BadRequest("Set either after_id or before_id, not both.", code="invalid_value")
    if before is not None:
        end = _position(ids, "before_id", before)
        start = max(0, end - limit)
        chosen, more = entries[start:end], start > 0
    else:
        start = _position(ids, "after_id", after) + 1 if after is not None else 0
        chosen, more = entries[start : start + limit], start + limit < len(entries)
    data = [_card(e) for e in chosen]
    return {
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def list_handler(svc: Services) -> Handler:
    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        return Response.json(page(_visible(svc, key.allowed_models), req.query))

    return handle


def get_handler(svc: Services) -> Handler:
    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        name = req.params["model"]
        entry = svc.catalog.models.get(name)
        allowed = key.allowed_models
        hidden = allowed is not None and name not in allowed
        if entry is None or entry.kind is not Kind.CHAT or hidden:
            raise NotFound(f"model: {name}", code="model_not_found")
        return Response.json(_card(entry))

    return handle


def for_anthropic(anthropic: Handler, other: Handler) -> Handler:
    """One route for several protocols: an Anthropic-authenticated caller gets Anthropic's
    answer and error envelope, everyone else `other`'s."""

    async def handle(req: Request) -> Response | StreamResponse:
        if not anthropic_client(req):
            return await other(req)
        try:
            return await anthropic(req)
        except FaregateError as exc:
            return render_error("anthropic", exc)

    return handle
