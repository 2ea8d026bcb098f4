"""The public OpenAPI document: generated from the route table (the client routes only) and
the schemas in `openapi_schemas`, never from a file."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from faregate.api.openapi_schemas import SCHEMAS
from faregate.http.router import Route, Visibility

VERSION = "3.0.3"


class Described(Protocol):
    """What the document reads of a route's declaration (a `RouteDef`)."""

    @property
    def path(self) -> str: ...
    @property
    def methods(self) -> tuple[str, ...]: ...
    @property
    def request_schema(self) -> str | None: ...
    @property
    def response_schema(self) -> str | None: ...


def schema_ref(name: str | None) -> dict[str, Any]:
    """A reference to the schema a declaration names (by the last part of its name), or any
    JSON object when the code has no schema of that name."""
    if name:
        short = name.rsplit("/", 1)[-1]
        if short in SCHEMAS:
            return {"$ref": f"#/components/schemas/{short}"}
    return {"type": "object", "additionalProperties": True}


def _path(route_path: str) -> tuple[str, list[str]]:
    params = re.findall(r"\{(\w+)(?::path)?\}", route_path)
    return re.sub(r"\{(\w+):path\}", r"{\1}", route_path), params


def _operation_id(method: str, path: str) -> str:
    return method.lower() + "_" + re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")


def _operation(route: Route, method: str, described: Described | None) -> dict[str, Any]:
    path, params = _path(route.path)
    responses: dict[str, Any] = {
        "200": {
            "description": "Success.",
            "content": {
                "application/json": {
                    "schema": schema_ref(described.response_schema if described else None)
                }
            },
        },
        "default": {
            "description": "An error, in the route's envelope.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    }
    if route.kind is not None and method == "POST" and route.protocol in ("openai", "llmage"):
        responses["200"]["content"]["text/event-stream"] = {
            "schema": {"type": "string", "description": "Server-sent events when streaming."}
        }
    op: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": route.summary,
        "tags": [_tag(route)],
        "security": [{"bearer": []}],
        "responses": responses,
    }
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if method in ("POST", "PUT", "PATCH"):
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": schema_ref(described.request_schema if described else None)
                }
            },
        }
    return op


def _tag(route: Route) -> str:
    if route.protocol in ("anthropic", "gemini"):
        return route.protocol.capitalize()
    if "/client/" in route.path:
        return "Account"
    return "OpenAI-compatible"


def document(
    routes: Iterable[Route], declared: Iterable[Described], base_url: str
) -> dict[str, Any]:
    """The document of every public route among `routes`, with the schemas their
    declarations name; `base_url` is the server clients call."""
    by_key = {(m, d.path): d for d in declared for m in d.methods}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.visibility != Visibility.PUBLIC:
            continue
        path, _ = _path(route.path)
        for method in sorted(route.methods):
            described = by_key.get((method, route.path))
            paths.setdefault(path, {})[method.lower()] = _operation(route, method, described)
    return {
        "openapi": VERSION,
        "info": {
            "title": "Faregate API",
            "version": "1",
            "description": "The client routes of this gateway. Authenticate with your API key"
            " as a bearer token.",
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
    }
