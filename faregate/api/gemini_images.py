"""Gemini-native `generateContent` on an image model: the request read into an image call,
the images answered as `inlineData` parts (one candidate per image)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from faregate.api.common import authenticate, cost_headers, json_body, request_id, routing_headers
from faregate.api.gemini_config import fields, invalid, unsupported
from faregate.api.images import b64_of
from faregate.api.images_request import MAX_IMAGES, reference_images
from faregate.http.request import Request
from faregate.http.responses import JSON_TYPE, SSE_HEADERS, Response, StreamResponse, header_list
from faregate.pipeline.images import Generated, generate
from faregate.pipeline.services import Services
from faregate.providers.image_types import ImageCall, ImageResult

TOP_FIELDS = {"contents", "generationConfig", "safetySettings", "tools", "labels", "model"}
CONFIG_FIELDS = {"responseModalities", "imageConfig", "candidateCount"}


def _prompt_and_refs(contents: Any) -> tuple[str, list[str]]:
    if not isinstance(contents, list) or not contents:
        raise invalid("contents", "* GenerateContentRequest.contents: contents is not specified")
    prompt, refs = "", []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        item = fields(content, where)
        if item.get("role", "user") != "user":
            continue
        texts = []
        for j, part in enumerate(item.get("parts") or ()):
            p = fields(part, f"{where}.parts[{j}]")
            if isinstance(p.get("text"), str):
                texts.append(p["text"])
            elif isinstance(p.get("inlineData"), dict):
                blob = fields(p["inlineData"], f"{where}.parts[{j}].inlineData")
                refs.append(f"data:{blob.get('mimeType')};base64,{blob.get('data')}")
            else:
                raise unsupported(f"{where}.parts[{j}]", "This part")
        prompt = " ".join(texts)
    if not prompt.strip():
        raise invalid("contents", "An image model needs a text prompt in the last user turn.")
    return prompt, refs


def _tools(value: Any) -> bool:
    """Whether the tools ask for Google Search (the only tool image models take)."""
    search = False
    for i, tool in enumerate(value or ()):
        t = fields(tool, f"tools[{i}]")
        if set(t) - {"googleSearch"}:
            raise unsupported(f"tools[{i}]", "This tool")
        search = True
    return search


def parse(model: str, body: dict[str, Any], rid: str) -> tuple[ImageCall, list[str]]:
    raw = fields(body, "request")
    for name in raw:
        if name not in TOP_FIELDS:
            raise unsupported(name, f"'{name}' on an image model")
    config = fields(raw.get("generationConfig"), "generationConfig")
    for name in config:
        if name not in CONFIG_FIELDS:
            raise unsupported(f"generationConfig.{name}", f"'{name}' on an image model")
    modalities = config.get("responseModalities")
    if modalities is not None and (
        not isinstance(modalities, list) or "IMAGE" not in [str(m).upper() for m in modalities]
    ):
        raise invalid(
            "generationConfig.responseModalities", "An image model answers with IMAGE output."
        )
    imaging = fields(config.get("imageConfig"), "generationConfig.imageConfig")
    for name in imaging:
        if name not in ("aspectRatio", "imageSize"):
            raise unsupported(f"generationConfig.imageConfig.{name}", f"'{name}'")
    n = config.get("candidateCount", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
        raise invalid(
            "generationConfig.candidateCount", f"candidateCount must be 1 to {MAX_IMAGES}."
        )
    prompt, refs = _prompt_and_refs(raw.get("contents"))
    labels = raw.get("labels")
    script = labels.get("sim_fault") if isinstance(labels, dict) else None
    safety = raw.get("safetySettings")
    call = ImageCall(
        model=model,
        prompt=prompt,
        n=n,
        request_id=rid,
        aspect_ratio=imaging.get("aspectRatio"),
        resolution=imaging.get("imageSize"),
        google_search=_tools(raw.get("tools")) or None,
        safety_settings=safety if isinstance(safety, list) else None,
        user=f"sim:{script}" if isinstance(script, str) else None,
    )
    return call, refs


async def _candidates(svc: Services, result: ImageResult) -> list[dict[str, Any]]:
    candidates = []
    for index, image in enumerate(result.images):
        kind, b64 = await b64_of(svc, image)
        parts: list[dict[str, Any]] = [{"text": result.text}] if result.text and not index else []
        parts.append({"inlineData": {"mimeType": kind, "data": b64}})
        candidates.append(
            {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": index}
        )
    return candidates


def _payload(done: Generated, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    u = done.usage
    return {
        "candidates": candidates,
        "usageMetadata": {
            "promptTokenCount": u.prompt_tokens,
            "candidatesTokenCount": u.completion_tokens,
            "totalTokenCount": u.prompt_tokens + u.completion_tokens,
        },
        "modelVersion": done.model,
    }


async def generate_content(
    svc: Services, req: Request, model: str, stream: bool
) -> Response | StreamResponse:
    """`generateContent` (or `streamGenerateContent`, answered in one chunk) on an image model."""
    rid = request_id()
    key = await authenticate(svc, req)
    call, refs = parse(model, await json_body(svc, req), rid)
    call.reference_images = await reference_images(svc, refs)
    candidates: list[dict[str, Any]] = []

    async def finish(result: ImageResult) -> None:
        candidates.extend(await _candidates(svc, result))

    done = await generate(svc, key, call, finish)
    payload = _payload(done, candidates)
    headers = {**cost_headers(svc, rid, done.model, done.cost), **routing_headers(done)}
    if not stream:
        return Response.json(payload, 200, headers)
    sse = req.query.get("alt") == "sse"
    data = orjson.dumps(payload)
    frame = b"data: " + data + b"\r\n\r\n" if sse else b"[" + data + b"]"

    async def one() -> AsyncIterator[bytes]:
        yield frame

    kind = SSE_HEADERS if sse else [JSON_TYPE]
    return StreamResponse(one(), 200, kind + header_list(headers))
