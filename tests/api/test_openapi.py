"""The public OpenAPI document: valid OpenAPI 3, generated from the route table, with every
public client route and no other (no admin, console or probe route)."""

from __future__ import annotations

import re
from unittest.mock import MagicMock

from openapi_spec_validator import validate

from faregate.api import openapi, routes
from faregate.api.openapi_schemas import SCHEMAS
from faregate.http.router import Visibility


def _table() -> list[routes.Route]:
    return routes.table(routes.Deps(MagicMock(), MagicMock(), MagicMock()))


def _doc() -> dict[str, object]:
    return openapi.document(_table(), routes.CLIENT, "https://gw.example.com")


def test_document_validates() -> None:
    validate(_doc())  # raises on any error


def test_every_public_route_and_nothing_else() -> None:
    table = _table()
    public = {
        (method.lower(), re.sub(r"\{(\w+):path\}", r"{\1}", r.path))
        for r in table
        if r.visibility == Visibility.PUBLIC
        for method in r.methods
    }
    doc = _doc()
    paths = doc["paths"]
    assert isinstance(paths, dict)
    listed = {(method, path) for path, ops in paths.items() for method in ops}
    assert listed == public
    others = {r.path for r in table if r.visibility != Visibility.PUBLIC}
    assert {"/admin/v1/accounts", "/console/keys", "/health", "/openapi.json"} <= others
    assert not any(p.startswith(("/admin", "/console", "/health", "/metrics")) for p in paths)


def test_schemas_come_from_the_code() -> None:
    doc = _doc()
    chat = doc["paths"]["/v1/chat/completions"]["post"]  # type: ignore[index]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CreateChatCompletionRequest"}
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert doc["components"]["schemas"] is SCHEMAS  # type: ignore[index]
    assert doc["servers"] == [{"url": "https://gw.example.com"}]
    model = doc["paths"]["/v1/models/{model}"]["get"]  # type: ignore[index]
    assert model["parameters"][0]["name"] == "model"


def test_unknown_schema_names_fall_back_to_an_object() -> None:
    assert openapi.schema_ref("specs/x.yaml#/components/schemas/Nope") == {
        "type": "object",
        "additionalProperties": True,
    }
