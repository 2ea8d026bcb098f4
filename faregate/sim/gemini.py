"""The Gemini API of the simulator: `/v1beta/models/{model}:METHOD` and the model list.

Routes: `:generateContent`, `:streamGenerateContent` (SSE events `data: {...}\\r\\n\\r\\n` with
`alt=sse`; without it, like the real API, one JSON array whose elements are written as they are
generated), `:countTokens`, `:embedContent`, `:batchEmbedContents`, `GET /v1beta/models` and
`GET /v1beta/models/{model}`. The key comes in `x-goog-api-key` or `?key=`; none is a 403,
`sim-gemini-invalid` (or `sk-sim-invalid`) a 400 API_KEY_INVALID as Google answers.

Faults use the shared scripts (`faregate.sim.faults`) from the `x-sim-fault` header or, since
Gemini bodies have no free metadata, a `labels: {"sim_fault": SCRIPT}` field. Errors come in
Google's shape `{"error": {"code", "message", "status", "details"}}`; a 429 carries Retry-After
and a RetryInfo detail, and `error_type=insufficient_quota` a daily QuotaFailure.
In streams every chunk with output counts as a content chunk for stall_after/cut_after;
`no_usage` leaves usageMetadata out of a generateContent reply, every chunk of a stream and
batchEmbedContents.

Embeddings are unit vectors of `outputDimensionality` (default 8) numbers from a BLAKE2b hash
of the model and text; usage is count_text of the texts. Requests are validated and counted in
`gemini_request`, replies made in `gemini_generate`. Only API version v1beta is served (the
version the gateway's adapter calls).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from faregate.sim import gemini_audio
from faregate.sim.delivery import play_stream, send_json
from faregate.sim.faults import FaultScript
from faregate.sim.gemini_common import (
    DIALECT,
    EMBED_DIMENSIONS,
    JSON_TYPE,
    PREFIX,
    get_model,
    google_error,
    invalid,
    list_models,
)
from faregate.sim.gemini_generate import (
    Candidate,
    generate,
    response_id,
    response_payload,
    stream_pieces,
    usage_metadata,
)
from faregate.sim.gemini_request import (
    Generate,
    Invalid,
    camel_keys,
    parse_generate,
    prompt_tokens,
)
from faregate.sim.prologue import prologue
from faregate.sim.state import STATE
from faregate.tokens import count_text


async def dispatch(request: web.Request) -> web.StreamResponse:
    """`POST /v1beta/models/{model}:METHOD`."""
    model, sep, method = request.match_info["tail"].rpartition(":")
    handler = HANDLERS.get(method) if sep else None
    if handler is None:
        request.app[STATE].count_request(PREFIX)
        return google_error(404, f"Method not found: {method or request.path}.")
    admitted = await prologue(request, f"{PREFIX}:{method}", DIALECT, url_model=model)
    if isinstance(admitted, web.Response):
        return admitted
    try:
        return await handler(request, model, admitted.body, admitted.script)
    except Invalid as exc:
        return invalid(str(exc))


async def _reply(
    request: web.Request, payload: dict[str, Any], script: FaultScript
) -> web.StreamResponse:
    return await send_json(request, script, orjson.dumps(payload), partial_type=JSON_TYPE)


def _generated(
    model: str, body: dict[str, Any], script: FaultScript
) -> tuple[Generate, list[Candidate], dict[str, Any]]:
    """The validated request, its candidates and their usage metadata."""
    req = parse_generate(model, body, script)
    candidates = generate(req, script)
    return req, candidates, usage_metadata(req, candidates, script)


async def generate_content(
    request: web.Request, model: str, body: dict[str, Any], script: FaultScript
) -> web.StreamResponse:
    audio = await gemini_audio.answer(request, model, body, script, stream=False)
    if audio is not None:
        return audio
    req, candidates, usage = _generated(model, body, script)
    payload = response_payload(req, candidates, usage, response_id())
    if script.no_usage:
        del payload["usageMetadata"]
    return await _reply(request, payload, script)


async def stream_generate_content(
    request: web.Request, model: str, body: dict[str, Any], script: FaultScript
) -> web.StreamResponse:
    audio = await gemini_audio.answer(request, model, body, script, stream=True)
    if audio is not None:
        return audio
    req, candidates, usage = _generated(model, body, script)
    sse = request.query.get("alt") == "sse"
    headers = {"Content-Type": "text/event-stream" if sse else JSON_TYPE}
    frames = _frames(req, candidates, usage, script, sse)
    return await play_stream(request, script, headers, frames)


def _frames(
    req: Generate,
    candidates: list[Candidate],
    usage: dict[str, Any],
    script: FaultScript,
    sse: bool,
) -> Iterator[tuple[bytes, bool]]:
    """(frame bytes, whether it counts as a content chunk): SSE events, or the elements
    of one JSON array; the chunks with output count, except the first."""
    rid = response_id()
    running = {"promptTokenCount": req.prompt_tokens, "totalTokenCount": req.prompt_tokens}
    count = 0

    def frame(payload: dict[str, Any]) -> bytes:
        nonlocal count
        payload = {**payload, "modelVersion": req.model, "responseId": rid}
        data = orjson.dumps(payload)
        separator = b"[" if count == 0 else b",\r\n"
        count += 1
        return b"data: " + data + b"\r\n\r\n" if sse else separator + data

    pieces = [stream_pieces(c) for c in candidates]
    for step in range(max(len(p) for p in pieces)):
        for cand, parts in zip(candidates, pieces, strict=True):
            if step < len(parts):
                entry = {"content": {"parts": [parts[step]], "role": "model"}, "index": cand.index}
                chunk: dict[str, Any] = {"candidates": [entry]}
                if not script.no_usage:
                    chunk["usageMetadata"] = running
                content = count > 0
                yield frame(chunk), content
    final = []
    for cand in candidates:
        entry = {"finishReason": cand.finish, "index": cand.index}
        if not any("functionCall" in p for p in cand.parts):
            entry["content"] = {"parts": [{"text": ""}], "role": "model"}
        final.append(entry)
    last: dict[str, Any] = {"candidates": final}
    if not script.no_usage:
        last["usageMetadata"] = usage
    yield frame(last), False
    if not sse:
        yield b"]", False


async def count_tokens(
    request: web.Request, model: str, body: dict[str, Any], script: FaultScript
) -> web.StreamResponse:
    inner = camel_keys(camel_keys(body).get("generateContentRequest")) or camel_keys(body)
    contents = inner.get("contents")
    if not isinstance(contents, list):
        raise Invalid("* CountTokensRequest.contents: contents is not specified")
    total = prompt_tokens(contents, inner.get("systemInstruction"), inner.get("tools"))
    details = [{"modality": "TEXT", "tokenCount": total}]
    return await _reply(request, {"totalTokens": total, "promptTokensDetails": details}, script)


def embedding(model: str, text: str, dims: int) -> list[float]:
    """A deterministic unit vector for `text`."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dims:
        digest = hashlib.blake2b(f"{model}|{counter}|{text}".encode(), digest_size=64).digest()
        raw += [int.from_bytes(digest[i : i + 4], "little") / 2**31 - 1 for i in range(0, 64, 4)]
        counter += 1
    values = raw[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _embed_one(model: str, item: Any, where: str) -> tuple[list[float], int]:
    req = camel_keys(item)
    content = camel_keys(req.get("content"))
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise Invalid(f"* {where}.content: content is not specified")
    texts = [str(p.get("text", "")) for p in parts if isinstance(p, dict)]
    dims = req.get("outputDimensionality") or EMBED_DIMENSIONS
    if not isinstance(dims, int) or not 1 <= dims <= 3072:
        raise Invalid(f"* {where}.output_dimensionality: must be between 1 and 3072.")
    joined = " ".join(texts)
    return embedding(model, joined, dims), count_text(joined)


async def embed_content(
    request: web.Request, model: str, body: dict[str, Any], script: FaultScript
) -> web.StreamResponse:
    values, _ = _embed_one(model, body, "EmbedContentRequest")
    return await _reply(request, {"embedding": {"values": values}}, script)


async def batch_embed_contents(
    request: web.Request, model: str, body: dict[str, Any], script: FaultScript
) -> web.StreamResponse:
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise Invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
    out, total = [], 0
    for i, item in enumerate(requests):
        named = camel_keys(item).get("model")
        if named not in (None, f"models/{model}"):
            raise Invalid(
                f"Model name in request ({named}) does not match model name in URL "
                f"(models/{model}) at requests[{i}]."
            )
        values, tokens = _embed_one(model, item, f"BatchEmbedContentsRequest.requests[{i}]")
        out.append({"values": values})
        total += tokens
    payload: dict[str, Any] = {"embeddings": out}
    if not script.no_usage:
        payload["usageMetadata"] = {"promptTokenCount": total, "totalTokenCount": total}
    return await _reply(request, payload, script)


HANDLERS = {
    "generateContent": generate_content,
    "streamGenerateContent": stream_generate_content,
    "countTokens": count_tokens,
    "embedContent": embed_content,
    "batchEmbedContents": batch_embed_contents,
}


def add_routes(app: web.Application) -> None:
    """Register the Gemini routes."""
    app.router.add_get(PREFIX, list_models)
    resource = app.router.add_resource(PREFIX + "/{tail}")
    resource.add_route("GET", get_model)
    resource.add_route("POST", dispatch)
