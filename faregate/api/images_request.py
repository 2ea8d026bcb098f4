"""Image requests from clients: the OpenAI fields, the snake_case and camelCase seed fields,
the multipart edit form, and the checks that refuse bad input before anything is held."""

from __future__ import annotations

import asyncio
from typing import Any

from faregate.errors import BadRequest, ValidationFailed
from faregate.http.multipart import Form, UploadFile
from faregate.pipeline.services import Services
from faregate.providers.image_bytes import decode_b64, image_type
from faregate.providers.image_types import ImageCall, InputImage

MAX_IMAGES = 10
MAX_INPUT_IMAGES = 16
SIZES = (
    "auto",
    *("256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792"),
)
CHOICES: dict[str, tuple[str, ...]] = {
    "size": SIZES,
    "quality": ("auto", "standard", "hd", "low", "medium", "high"),
    "style": ("vivid", "natural"),
    "response_format": ("url", "b64_json"),
    "background": ("transparent", "opaque", "auto"),
    "output_format": ("png", "jpeg", "webp"),
    "resolution": ("1K", "2K", "4K"),
}
ALIASES = {
    "aspectRatio": "aspect_ratio",
    "imageSize": "resolution",
    "responseFormat": "response_format",
    "referenceImages": "reference_images",
    "negativePrompt": "negative_prompt",
    "googleSearch": "google_search",
    "safetySettings": "safety_settings",
    "projectId": "project_id",
    "veonModelKey": "veon_model_key",
}
"""Seed camelCase spellings of the image route, and their canonical snake_case field."""

TEXT_FIELDS: tuple[str, ...] = (
    *("size", "quality", "style", "response_format", "background", "output_format", "user"),
    *("aspect_ratio", "resolution", "negative_prompt", "project_id", "veon_model_key"),
)
KNOWN = {"model", "prompt", "n", "reference_images", "google_search", "safety_settings"}
KNOWN |= set(TEXT_FIELDS)


def canonical(body: dict[str, Any]) -> dict[str, Any]:
    """The body with every camelCase alias under its snake_case name; 422 naming both
    spellings when a body sends both."""
    out = dict(body)
    for alias, name in ALIASES.items():
        if alias in out:
            if name in out:
                raise ValidationFailed(
                    f"'{name}' and '{alias}' are the same field; send only one of them.",
                    code="duplicate_field",
                    param=f"{name},{alias}",
                )
            out[name] = out.pop(alias)
    return out


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"'{name}' must be a string.", code="invalid_type", param=name)
    choices = CHOICES.get(name)
    if choices is not None and value not in choices:
        raise BadRequest(
            f"'{name}' must be one of {', '.join(choices)}; got {value!r}.",
            code="invalid_value",
            param=name,
        )
    return value


def _n(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, str) and value.strip().isdigit():  # a form field
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationFailed("'n' must be an integer.", code="invalid_type", param="n")
    if not 1 <= value <= MAX_IMAGES:
        raise BadRequest(
            f"'n' must be from 1 to {MAX_IMAGES}; got {value}.", code="invalid_value", param="n"
        )
    return value


def _prompt(value: Any) -> str:
    if value is None:
        raise BadRequest(
            "Missing required parameter: 'prompt'.", code="missing_prompt", param="prompt"
        )
    if not isinstance(value, str):
        raise ValidationFailed("'prompt' must be a string.", code="invalid_type", param="prompt")
    if not value.strip():
        raise BadRequest("'prompt' must not be empty.", code="empty_prompt", param="prompt")
    return value


def _model(value: Any) -> str:
    if value is None:
        raise BadRequest(
            "Missing required parameter: 'model'.", code="missing_model", param="model"
        )
    if not isinstance(value, str) or not value:
        raise ValidationFailed("'model' must be a string.", code="invalid_type", param="model")
    return value


def response_format(body: dict[str, Any]) -> str:
    """`url` (the default) or `b64_json`, under either spelling."""
    return _text(canonical(body), "response_format") or "url"


def parse_generation(body: dict[str, Any], rid: str) -> ImageCall:
    """A generation call from a JSON body (aliases resolved); refuses unknown fields."""
    body = canonical(body)
    for name in body:
        if name not in KNOWN:
            raise BadRequest(f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name)
    texts = {name: _text(body, name) for name in TEXT_FIELDS}
    search = body.get("google_search")
    if search is not None and not isinstance(search, bool):
        raise ValidationFailed(
            "'google_search' must be a boolean.", code="invalid_type", param="google_search"
        )
    safety = body.get("safety_settings")
    if safety is not None and not (
        isinstance(safety, list) and all(isinstance(s, dict) for s in safety)
    ):
        raise ValidationFailed(
            "'safety_settings' must be a list of objects.",
            code="invalid_type",
            param="safety_settings",
        )
    return ImageCall(
        model=_model(body.get("model")),
        prompt=_prompt(body.get("prompt")),
        n=_n(body.get("n")),
        request_id=rid,
        size=texts["size"],
        quality=texts["quality"],
        style=texts["style"],
        background=texts["background"],
        output_format=texts["output_format"],
        user=texts["user"],
        aspect_ratio=texts["aspect_ratio"],
        resolution=texts["resolution"],
        negative_prompt=texts["negative_prompt"],
        google_search=search,
        safety_settings=safety,
        project_id=texts["project_id"],
        veon_model_key=texts["veon_model_key"],
    )


def refs_of(body: dict[str, Any]) -> list[Any]:
    refs = canonical(body).get("reference_images")
    if refs is None:
        return []
    if not isinstance(refs, list) or len(refs) > MAX_INPUT_IMAGES:
        raise ValidationFailed(
            f"'reference_images' must be a list of at most {MAX_INPUT_IMAGES} images.",
            code="invalid_type",
            param="reference_images",
        )
    return refs


async def checked_image(data: bytes, param: str, filename: str = "image.png") -> InputImage:
    """An input image whose bytes are a well-formed PNG, JPEG, WebP or GIF, else a 400."""
    kind = await asyncio.to_thread(image_type, data)
    if kind is None:
        raise BadRequest(
            f"'{param}' is not a valid PNG, JPEG, WebP or GIF image.",
            code="invalid_image",
            param=param,
        )
    return InputImage(data, kind, filename)


async def reference_images(svc: Services, refs: list[Any]) -> list[InputImage]:
    """Reference images as data URLs, base64 or `{url}` / `{b64_json}` objects; remote URLs
    fetched through the guarded fetcher."""
    out: list[InputImage] = []
    for i, ref in enumerate(refs):
        param = f"reference_images[{i}]"
        if isinstance(ref, dict):
            ref = ref.get("url") or ref.get("b64_json") or ref.get("image_url")
            if isinstance(ref, dict):
                ref = ref.get("url")
        if not isinstance(ref, str) or not ref:
            raise ValidationFailed(
                f"'{param}' must be an image URL, a data URL or base64.",
                code="invalid_type",
                param=param,
            )
        if ref.startswith(("https://", "http://")):
            _, data = await svc.fetcher.fetch(ref)
        else:
            raw = decode_b64(ref)
            if raw is None:
                raise BadRequest(
                    f"'{param}' is not valid base64.", code="invalid_image", param=param
                )
            data = raw
        out.append(await checked_image(data, param))
    return out


async def _upload(file: UploadFile, param: str) -> InputImage:
    return await checked_image(await file.read(), param, file.filename or "image.png")


async def parse_edit(form: Form, rid: str) -> tuple[ImageCall, str]:
    """An edit call from the OpenAI SDK's multipart form (one or more `image`, a `mask`),
    and the response format asked for."""
    fields: dict[str, Any] = {}
    for name, value in form.items:
        if isinstance(value, str):
            fields[name.removesuffix("[]")] = value
    fields.pop("image", None)
    fields.pop("mask", None)
    for name in fields:
        if name not in KNOWN or name in ("reference_images", "referenceImages"):
            raise BadRequest(f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name)
    files = form.files("image")
    if not files:
        raise BadRequest(
            "Missing required parameter: 'image'.", code="missing_image", param="image"
        )
    if len(files) > MAX_INPUT_IMAGES:
        raise BadRequest(
            f"'image' takes at most {MAX_INPUT_IMAGES} files.", code="invalid_value", param="image"
        )
    call = parse_generation({k: v for k, v in fields.items() if k != "n"}, rid)
    call.n = _n(fields.get("n"))
    call.edit = True
    call.images = [await _upload(f, "image") for f in files]
    mask = form.file("mask")
    if mask is not None:
        call.mask = await _upload(mask, "mask")
        if call.mask.content_type != "image/png":
            raise BadRequest("'mask' must be a PNG image.", code="invalid_image", param="mask")
    return call, response_format(fields)
