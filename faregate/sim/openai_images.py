"""The OpenAI Images API of the simulator: `POST /v1/images/generations` (JSON) and
`POST /v1/images/edits` (multipart, images checked to be images), plus the links it hands out.

Images are the PNGs of `sim.images` (seeded by the model, the prompt, the index and, for
edits, the input images). `b64_json` is answered when asked for and by default for the GPT
image models; otherwise (`url`) a link to `GET /sim/images/{id}.png` on this simulator.
`dall-e-3` replies carry a `revised_prompt`; the GPT image models report token usage
(input: count_text of the prompt plus 65 per input image; output: 272 per image), which
`no_usage` leaves out. Faults: the shared scripts, plus `bad_image` and `images=N`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import OrderedDict
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from faregate.sim.delivery import send_json
from faregate.sim.faults import FaultScript
from faregate.sim.images import dimensions, image_b64, is_image
from faregate.sim.openai_common import invalid_param, now, openai_dialect, request_headers
from faregate.sim.prologue import prologue
from faregate.tokens import count_text

SIZES = (
    *("auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536"),
    *("1792x1024", "1024x1792"),
)
OUTPUT_TOKENS_PER_IMAGE = 272
INPUT_TOKENS_PER_IMAGE = 65
KEPT_LINKS = 256

DIALECT = openai_dialect("We could not parse the JSON body of your request.")
FORM_DIALECT = openai_dialect("The request must be a multipart/form-data body.")
LINKS: web.AppKey[OrderedDict[str, bytes]] = web.AppKey("sim_image_links", OrderedDict)


async def _read_form(request: web.Request) -> dict[str, Any] | None:
    """The form's text fields, and its `image` / `mask` files as lists of bytes."""
    if not request.content_type.startswith("multipart/"):
        return None
    form: dict[str, Any] = {"image": [], "mask": []}
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        name = part.name.removesuffix("[]")
        if part.filename is not None:
            form.setdefault(name, []).append(await part.read())
        else:
            form[name] = await part.text()
    return form


def _error(message: str, param: str, code: str | None = None) -> web.Response:
    return invalid_param(message, param, code)


def _check(body: dict[str, Any]) -> tuple[str, str, int, str | None] | web.Response:
    model, prompt = body.get("model"), body.get("prompt")
    if not isinstance(model, str):
        return _error("you must provide a model parameter", "model")
    if not isinstance(prompt, str) or not prompt:
        return _error("you must provide a prompt", "prompt")
    n = body.get("n", 1)
    if isinstance(n, str) and n.isdigit():
        n = int(n)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
        return _error("'n' must be an integer from 1 to 10.", "n")
    size = body.get("size")
    if size is not None and size not in SIZES:
        return _error(f"Invalid value: '{size}'. Supported values are: {SIZES}.", "size")
    return model, prompt, n, size


def _link(request: web.Request, data: bytes) -> str:
    links = request.app[LINKS]
    key = secrets.token_urlsafe(16)
    links[key] = data
    while len(links) > KEPT_LINKS:
        links.popitem(last=False)
    return f"{request.scheme}://{request.host}/sim/images/{key}.png"


async def _answer(
    request: web.Request, body: dict[str, Any], script: FaultScript, salt: str, inputs: int
) -> web.StreamResponse:
    checked = _check(body)
    if isinstance(checked, web.Response):
        return checked
    model, prompt, n, size = checked
    fmt = body.get("response_format")
    if fmt is None:
        fmt = "b64_json" if model.startswith("gpt-image") else "url"
    if fmt not in ("url", "b64_json"):
        return _error("'response_format' must be url or b64_json.", "response_format")
    count = n if script.images is None else min(n, script.images)
    data = []
    for index in range(count):
        b64 = image_b64(f"{model}|{index}|{salt}|{prompt}", dimensions(size), script.bad_image)
        item: dict[str, Any] = (
            {"b64_json": b64}
            if fmt == "b64_json"
            else {"url": _link(request, base64.b64decode(b64))}
        )
        if model.startswith("dall-e-3"):
            item["revised_prompt"] = f"A detailed rendering of: {prompt}"
        data.append(item)
    reply: dict[str, Any] = {"created": now(), "data": data}
    if model.startswith("gpt-image") and not script.no_usage:
        prompt_tokens = count_text(prompt) + inputs * INPUT_TOKENS_PER_IMAGE
        output = count * OUTPUT_TOKENS_PER_IMAGE
        reply["usage"] = {
            "input_tokens": prompt_tokens,
            "output_tokens": output,
            "total_tokens": prompt_tokens + output,
            "input_tokens_details": {
                "text_tokens": count_text(prompt),
                "image_tokens": inputs * INPUT_TOKENS_PER_IMAGE,
            },
        }
    return await send_json(request, script, orjson.dumps(reply), request_headers())


async def generations(request: web.Request) -> web.StreamResponse:
    """`POST /v1/images/generations`."""
    admitted = await prologue(request, "images/generations", DIALECT)
    if isinstance(admitted, web.Response):
        return admitted
    return await _answer(request, admitted.body, admitted.script, "", 0)


async def edits(request: web.Request) -> web.StreamResponse:
    """`POST /v1/images/edits`: every `image` (and the `mask`) must be an image."""
    admitted = await prologue(request, "images/edits", FORM_DIALECT, read_body=_read_form)
    if isinstance(admitted, web.Response):
        return admitted
    body = admitted.body
    images: list[bytes] = body.get("image") or []
    if not images:
        return _error("you must provide an image", "image")
    for name, files in (("image", images), ("mask", body.get("mask") or [])):
        if not all(is_image(f) for f in files):
            return _error(
                f"Invalid file for '{name}': not a supported image.", name, "invalid_image_format"
            )
    salt = hashlib.sha256(b"".join(images)).hexdigest()[:16]
    return await _answer(request, body, admitted.script, salt, len(images))


async def link(request: web.Request) -> web.Response:
    """`GET /sim/images/{id}.png`: an image handed out as a URL."""
    data = request.app[LINKS].get(request.match_info["id"])
    if data is None:
        return web.Response(status=404)
    return web.Response(body=data, content_type="image/png")


def add_routes(app: web.Application) -> None:
    app[LINKS] = OrderedDict()
    app.router.add_post("/v1/images/generations", generations)
    app.router.add_post("/v1/images/edits", edits)
    app.router.add_get("/sim/images/{id}.png", link)
