"""The OpenAI embeddings protocol: `POST /v1/embeddings`.

Vectors are deterministic (seeded by a hash of the input and the model) and unit-length;
usage is exact: prompt_tokens = the sum of `faregate.tokens.count_text` over the string
inputs, or the number of token ids for token-array inputs. `no_usage` leaves it out.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from aiohttp import web

from faregate import tokens
from faregate.sim.openai_common import (
    invalid_param,
    json_response,
    openai_dialect,
    request_headers,
)
from faregate.sim.prologue import prologue

ROUTE = "embeddings"
DEFAULT_DIMENSIONS = 16

DIALECT = openai_dialect("We could not parse the JSON body of your request.")


def vector(text: str, model: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for `text`."""
    raw = b""
    counter = 0
    while len(raw) < dimensions * 4:
        raw += hashlib.sha256(f"{model}\0{counter}\0{text}".encode()).digest()
        counter += 1
    values = [
        (int.from_bytes(raw[i * 4 : i * 4 + 4], "big") / 2**32) * 2 - 1 for i in range(dimensions)
    ]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _inputs(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, int) for v in value):
            return [" ".join(map(str, value))]
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return [" ".join(map(str, v)) for v in value]
    return None


def _count(value: Any) -> int:
    if isinstance(value, str):
        return tokens.count_text(value)
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return len(value)
    return sum(_count(v) for v in value) if isinstance(value, list) else 0


async def embeddings(request: web.Request) -> web.StreamResponse:
    """Handle one embeddings request, faults included."""
    admitted = await prologue(request, ROUTE, DIALECT)
    if isinstance(admitted, web.Response):
        return admitted
    body = admitted.body
    model = body.get("model")
    if not isinstance(model, str):
        return invalid_param("you must provide a model parameter", "model")
    texts = _inputs(body.get("input"))
    if texts is None:
        return invalid_param(
            "'input' must be a string, an array of strings or token arrays.", "input"
        )
    dims = body.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(dims, int) or not 1 <= dims <= 4096:
        return invalid_param("'dimensions' must be an integer from 1 to 4096.", "dimensions")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vec = vector(text, model, dims)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if as_base64 else vec
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    used = _count(body.get("input"))
    reply: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if not admitted.script.no_usage:
        reply["usage"] = {"prompt_tokens": used, "total_tokens": used}
    return json_response(reply, headers=request_headers())
