"""The admin API for prices and plans: stored in the database over the config file's, applied
at once by the process that takes the call and within seconds by every other replica."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from faregate.admin import catalog_ops
from faregate.api.admin import AdminAPI, admin_route
from faregate.api.common import json_body
from faregate.config import Config
from faregate.http.request import Request
from faregate.http.router import Route


class Gateway(Protocol):
    config: Config
    overrides: catalog_ops.Overrides

    async def refresh_overrides(self) -> bool: ...


def routes(admin: AdminAPI, app: Gateway, prefix: str = "/admin/v1") -> list[Route]:
    """Its routes, for the route table (`faregate.api.routes`)."""

    async def changed(result: Any) -> Any:
        await app.refresh_overrides()
        return result

    async def prices(req: Request) -> dict[str, Any]:
        stored = app.overrides.prices
        data = [
            {
                "model": name,
                **model.price.model_dump(),
                "source": "admin" if name in stored else "config",
            }
            for name, model in app.config.models.items()
        ]
        return {"object": "list", "data": data}

    async def put_price(req: Request) -> dict[str, Any]:
        model, body = req.params["model"], await json_body(admin.svc, req)
        result = await admin._audited(
            req,
            lambda c: catalog_ops.set_price(c, app.config, model, body),
            "price.set",
            model,
            body,
        )
        return dict(await changed(result))

    async def delete_price(req: Request) -> dict[str, Any]:
        model = req.params["model"]
        result = await admin._audited(
            req, lambda c: catalog_ops.delete_price(c, model), "price.delete", model
        )
        return dict(await changed(result))

    async def plans(req: Request) -> dict[str, Any]:
        stored = app.overrides.plans
        data = [
            {
                "name": name,
                **plan.model_dump(exclude_none=True),
                "source": "admin" if name in stored else "config",
            }
            for name, plan in app.config.plans.items()
        ]
        return {"object": "list", "default_plan": app.config.limits.default_plan, "data": data}

    async def put_plan(req: Request) -> dict[str, Any]:
        name, body = req.params["name"], await json_body(admin.svc, req)
        result = await admin._audited(
            req, lambda c: catalog_ops.set_plan(c, app.config, name, body), "plan.set", name, body
        )
        return dict(await changed(result))

    async def delete_plan(req: Request) -> dict[str, Any]:
        name = req.params["name"]
        result = await admin._audited(
            req, lambda c: catalog_ops.delete_plan(c, name), "plan.delete", name
        )
        return dict(await changed(result))

    table: list[tuple[str, str, Callable[[Request], Awaitable[Any]]]] = [
        ("/prices", "GET", prices),
        ("/prices/{model:path}", "PUT", put_price),
        ("/prices/{model:path}", "DELETE", delete_price),
        ("/plans", "GET", plans),
        ("/plans/{name}", "PUT", put_plan),
        ("/plans/{name}", "DELETE", delete_plan),
    ]
    return [admin_route(f"{prefix}{path}", method, admin._route(fn)) for path, method, fn in table]
