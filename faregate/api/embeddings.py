"""`POST /v1/embeddings`: the OpenAI embeddings protocol to clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from faregate.api.common import authenticate, cost_headers, json_body, request_id, usage_cost
from faregate.errors import BadRequest, ValidationFailed
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.pipeline.embeddings import embed
from faregate.pipeline.services import Services
from faregate.providers.base import EmbedCall

MAX_INPUTS = 2048


class _Embeddings(msgspec.Struct):
    model: str
    input: str | list[str | int | list[int]]
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None


def _texts(value: str | list[str | int | list[int]]) -> list[str]:
    """The inputs as texts: strings as they are, token arrays as space-joined ids."""
    if isinstance(value, str):
        return [value]
    if all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    if all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if all(isinstance(v, list) for v in value):
        return [" ".join(map(str, v)) for v in value if isinstance(v, list)]
    raise ValidationFailed(
        "'input' must be a string, an array of strings, an array of token ids or an array of"
        " token-id arrays.",
        param="input",
    )


def parse_embeddings(body: dict[str, Any], rid: str) -> EmbedCall:
    for name in ("model", "input"):
        if name not in body:
            raise BadRequest(
                f"Missing required parameter: '{name}'.", code=f"missing_{name}", param=name
            )
    try:
        req = msgspec.convert(body, _Embeddings)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = text.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in text else None
        raise ValidationFailed(f"Invalid request: {text}", param=param) from None
    inputs = _texts(req.input)
    if not inputs or any(not text for text in inputs):
        raise BadRequest("'input' must not be empty.", code="empty_input", param="input")
    if len(inputs) > MAX_INPUTS:
        raise BadRequest(
            f"'input' takes at most {MAX_INPUTS} items.", code="invalid_value", param="input"
        )
    if req.encoding_format not in (None, "float", "base64"):
        raise BadRequest(
            "'encoding_format' must be 'float' or 'base64'.",
            code="invalid_value",
            param="encoding_format",
        )
    return EmbedCall(model=req.model, inputs=inputs, body=body, request_id=rid)


def embeddings_handler(svc: Services) -> Callable[[Request], Any]:
    async def handle(req: Request) -> Response:
        rid = request_id()
        key = await authenticate(svc, req)
        call = parse_embeddings(await json_body(svc, req), rid)
        done = await embed(svc, key, call)
        body = done.result.body
        reported = body.get("usage")
        usage: dict[str, Any] = reported if isinstance(reported, dict) else {}
        body["usage"] = {
            "prompt_tokens": done.usage.prompt_tokens,
            "total_tokens": done.usage.prompt_tokens,
            **usage,
            **usage_cost(svc, done.cost),
        }
        return Response.json(body, 200, cost_headers(svc, rid, done.model, done.cost))

    return handle
