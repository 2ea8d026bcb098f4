"""The OpenAI Videos API upstream: `POST /videos`, `GET /videos/{id}`, its content variants."""

from __future__ import annotations

from typing import Any

import orjson

from faregate.errors import UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest
from faregate.providers.openai import OpenAIChat
from faregate.providers.video import (
    Asset,
    Phase,
    VideoCall,
    VideoStatus,
    count,
    json_object,
    malformed,
    multipart,
)

_PHASES: dict[str, Phase] = {
    "queued": "queued",
    "in_progress": "running",
    "completed": "succeeded",
    "failed": "failed",
}
_SIZES = {"480p": "854x480", "720p": "1280x720", "1080p": "1920x1080"}


class OpenAIVideo:
    """Videos over the OpenAI protocol (Sora and compatible servers)."""

    name = "openai"

    def auth_headers(self, creds: Credentials) -> dict[str, str]:
        return {"authorization": f"Bearer {creds.api_key}"} if creds.api_key else {}

    def unsupported(self, call: VideoCall) -> str | None:
        if count(call, "reference_video", "reference_audio"):
            return "the OpenAI Videos API takes no reference video or audio"
        if len(call.files) > 1:
            return "the OpenAI Videos API takes one input image (input_reference)"
        return None

    def submit_request(
        self, call: VideoCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        fields = [
            ("model", upstream_model),
            ("prompt", call.prompt),
            ("seconds", str(call.seconds)),
        ]
        size = call.size or _SIZES.get((call.resolution or "").lower())
        if size:
            fields.append(("size", size))
        headers = {**creds.headers, **self.auth_headers(creds)}
        first = call.files[:1]
        if first:
            content_type, body = multipart(fields, [("input_reference", first[0])])
            return UpstreamRequest("/videos", {**headers, "content-type": content_type}, body)
        body = orjson.dumps(dict(fields))
        return UpstreamRequest("/videos", {**headers, "content-type": "application/json"}, body)

    def parse_submit(self, body: bytes) -> str:
        found = json_object(body).get("id")
        if not isinstance(found, str) or not found:
            raise malformed("a video without an id")
        return found

    def poll_request(self, upstream_id: str, creds: Credentials) -> UpstreamRequest:
        return UpstreamRequest(
            f"/videos/{upstream_id}", {**creds.headers, **self.auth_headers(creds)}, b""
        )

    def parse_poll(self, body: bytes) -> VideoStatus:
        data = json_object(body)
        phase = _PHASES.get(str(data.get("status")))
        vid = data.get("id")
        if phase is None or not isinstance(vid, str):
            raise malformed(f"an unknown video status {str(data.get('status'))[:40]!r}")
        progress = data.get("progress")
        pct = int(progress) if isinstance(progress, int | float) else 0
        if phase == "failed":
            return VideoStatus("failed", pct, error=_error(data.get("error")))
        if phase != "succeeded":
            return VideoStatus(phase, pct)
        seconds = _seconds(data.get("seconds"))
        return VideoStatus(
            "succeeded",
            100,
            seconds,
            Asset(f"/videos/{vid}/content?variant=video"),
            Asset(f"/videos/{vid}/content?variant=thumbnail"),
        )

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return _CHAT.classify_error(status, headers, body)


def _seconds(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _error(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or "generation failed")
    return "generation failed"


_CHAT = OpenAIChat()
