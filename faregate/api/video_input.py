"""A video job's inputs from any surface: the prompt, the duration, and the files (uploaded
parts or base64 / data URLs in JSON), each checked to be what its field says it is."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from faregate.errors import BadRequest, PayloadTooLarge
from faregate.http.multipart import UploadFile
from faregate.http.sniff import sniff
from faregate.pipeline.services import Services
from faregate.providers.video import InputFile, Role

_FAMILY = {
    "first_frame": "image",
    "last_frame": "image",
    "reference_image": "image",
    "reference_video": "video",
    "reference_audio": "audio",
}
_ACCEPTED = {"image": "PNG, JPEG, WebP, GIF", "video": "MP4, WebM", "audio": "WAV, MP3, Ogg, FLAC"}


def text(value: Any, param: str, *, required: bool = False) -> str | None:
    """A text field: None when absent or empty (400 naming it when required)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRequest(
                f"Missing required parameter: {param}", code="missing_parameter", param=param
            )
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise BadRequest(f"'{param}' must be a string.", code="invalid_type", param=param)
    return str(value).strip()


def seconds(value: Any, param: str, default: int) -> int:
    """A whole number of seconds ("5", 5, "5s"); the default when absent."""
    if value is None or value == "":
        return default
    raw = str(value).strip().lower().removesuffix("s")
    try:
        number = float(raw)
    except ValueError:
        raise BadRequest(
            f"'{param}' must be a whole number of seconds (got {str(value)[:20]!r}).",
            code="invalid_duration",
            param=param,
        ) from None
    if number != int(number) or isinstance(value, bool):
        raise BadRequest(
            f"'{param}' must be a whole number of seconds.", code="invalid_duration", param=param
        )
    return int(number)


def _checked(role: Role, data: bytes, param: str, cap: int) -> InputFile:
    if len(data) > cap:
        raise PayloadTooLarge(f"'{param}' is over {cap} bytes.", param=param)
    found = sniff(data[:64]) or ""
    family = _FAMILY[role]
    if not found.startswith(family + "/"):
        raise BadRequest(
            f"'{param}' is not {'a' if family == 'video' else 'an'} {family} file"
            f" (accepted: {_ACCEPTED[family]}).",
            code=f"invalid_{family}",
            param=param,
        )
    return InputFile(role, found, data)


async def upload(svc: Services, role: Role, part: UploadFile, param: str) -> InputFile:
    """An uploaded file part as a job input."""
    return _checked(role, await part.read(), param, svc.config.server.max_part_bytes)


async def inline(svc: Services, role: Role, value: Any, param: str) -> InputFile:
    """A base64 string, a `data:` URL, or (for images) an http(s) URL fetched through the
    guarded fetcher, from a JSON body or a form's text field."""
    if isinstance(value, dict):  # {"image_url": "data:..."} or {"url": "data:..."}
        value = value.get("image_url") or value.get("url")
        if isinstance(value, dict):
            value = value.get("url")
    if not isinstance(value, str) or not value:
        raise BadRequest(
            f"'{param}' must be a data URL or base64 string.", code="invalid_file", param=param
        )
    if value.startswith(("http://", "https://")):
        if _FAMILY[role] != "image":
            raise BadRequest(
                f"'{param}': remote {_FAMILY[role]} URLs are not fetched; upload the file or"
                " send it as a data URL.",
                code="unsupported_url",
                param=param,
            )
        _, fetched = await svc.fetcher.fetch(value)  # 400 url_refused when the guard refuses
        return _checked(role, fetched, param, svc.config.server.max_part_bytes)
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    cap = svc.config.server.max_part_bytes
    if len(payload) > cap * 4 // 3 + 4:
        raise PayloadTooLarge(f"'{param}' is over {cap} bytes.", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            f"'{param}' is not valid base64.", code="invalid_file", param=param
        ) from None
    return _checked(role, data, param, cap)


def check_count(svc: Services, files: list[InputFile]) -> None:
    limit = svc.config.video.max_files
    if len(files) > limit:
        raise BadRequest(f"At most {limit} input files per video job.", code="too_many_files")
