"""The route table."""

from __future__ import annotations

from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.http.router import Router


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
