"""`GET /v1/models` and `GET /api/client/balance`: what this key may use and has left."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faregate.api.common import authenticate
from faregate.billing.pricing import to_usd
from faregate.errors import NotFound
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.pipeline.services import Services
from faregate.routing.catalog import ModelEntry


def _model_card(entry: ModelEntry) -> dict[str, Any]:
    return {
        "id": entry.name,
        "object": "model",
        "created": entry.created,
        "owned_by": entry.owned_by,
    }


def models_handler(svc: Services) -> Callable[[Request], Any]:
    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        allowed = key.allowed_models
        data = [
            _model_card(entry)
            for name, entry in svc.catalog.models.items()
            if allowed is None or name in allowed
        ]
        return Response.json({"object": "list", "data": data})

    return handle


def model_handler(svc: Services) -> Callable[[Request], Any]:
    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        name = req.params["model"]
        entry = svc.catalog.models.get(name)
        if entry is None or (key.allowed_models is not None and name not in key.allowed_models):
            raise NotFound(f"The model '{name}' does not exist.", code="model_not_found")
        return Response.json(_model_card(entry))

    return handle


def balance_handler(svc: Services) -> Callable[[Request], Any]:
    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        view = await svc.store.balance(key.account_id)
        rate = svc.config.billing.micro_credits_per_usd
        return Response.json(
            {
                "object": "balance",
                "account_id": key.account_id,
                "key_id": key.id,
                "unit": "micro_credits",
                "balance": view.balance,
                "available": view.balance,
                "held": view.held,
                "open_holds": view.open_holds,
                "balance_usd": to_usd(view.balance, rate),
            }
        )

    return handle
