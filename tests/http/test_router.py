"""The route table."""

from __future__ import annotations

import pytest

from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.http.router import Router
from faregate.kinds import Kind


async def _h(req: Request) -> Response:
    return Response.json({})


def test_exact_and_patterned_routes() -> None:
    r = Router()
    r.add("/v1/models", ["GET"], _h)
    r.add("/v1/models/{model:path}", ["GET"], _h)
    r.add("/a/{x}/b", ["POST"], _h, "llmage")
    route, params, _ = r.match("GET", "/v1/models/org/name")
    assert route is not None and params == {"model": "org/name"}
    route, params, _ = r.match("POST", "/a/1/b")
    assert route is not None and route.protocol == "llmage" and params == {"x": "1"}
    assert r.match("GET", "/v1/models")[0] is not None
    assert r.match("DELETE", "/v1/models") == (None, {}, True)
    assert r.match("GET", "/nothing") == (None, {}, False)
    assert r.protocol_for("/llmage/x") == "llmage"


def test_a_route_registered_twice_is_refused() -> None:
    r = Router()
    r.add("/v1/x", ["GET", "POST"], _h)
    with pytest.raises(ValueError, match="POST /v1/x is already registered"):
        r.add("/v1/x", ["POST"], _h)
    r.add("/v1/{name}", ["GET"], _h)
    with pytest.raises(ValueError, match="already registered"):
        r.add("/v1/{name}", ["GET"], _h)
    r.add("/v1/{name}", ["DELETE"], _h)
    assert [(sorted(route.methods), route.path) for route in r.routes()] == [
        (["GET", "POST"], "/v1/x"),
        (["GET"], "/v1/{name}"),
        (["DELETE"], "/v1/{name}"),
    ]


def test_a_kind_given_by_name_is_the_kind() -> None:
    r = Router()
    r.add("/v1/chat/completions", ["POST"], _h, kind="chat")
    route = r.match("POST", "/v1/chat/completions")[0]
    assert route is not None
    assert route.kind is Kind.CHAT
