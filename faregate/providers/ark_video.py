"""Volcengine Ark content generation (Seedance): create a task, get the task."""

from __future__ import annotations

from typing import Any

import orjson

from faregate.errors import UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest
from faregate.providers.openai import OpenAIChat
from faregate.providers.video import Asset, Phase, VideoCall, VideoStatus, json_object, malformed

_PHASES: dict[str, Phase] = {
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "failed",
    "expired": "failed",
}
_TASKS = "/contents/generations/tasks"


class ArkVideo:
    """Videos over the Ark content-generation task API (base URL ends in `/api/v3`)."""

    name = "ark"

    def auth_headers(self, creds: Credentials) -> dict[str, str]:
        return {"authorization": f"Bearer {creds.api_key}"} if creds.api_key else {}

    def _headers(self, creds: Credentials) -> dict[str, str]:
        return {"content-type": "application/json", **creds.headers, **self.auth_headers(creds)}

    def unsupported(self, call: VideoCall) -> str | None:
        return None  # frames, reference images, videos and audio alike

    def submit_request(
        self, call: VideoCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        content: list[dict[str, Any]] = [{"type": "text", "text": call.prompt}]
        for f in call.files:
            if f.role in ("first_frame", "last_frame", "reference_image"):
                content.append(
                    {"type": "image_url", "image_url": {"url": f.data_url()}, "role": f.role}
                )
            elif f.role == "reference_video":
                content.append(
                    {"type": "video_url", "video_url": {"url": f.data_url()}, "role": f.role}
                )
            elif f.role == "reference_audio":
                content.append(
                    {"type": "audio_url", "audio_url": {"url": f.data_url()}, "role": f.role}
                )
        body: dict[str, Any] = {
            "model": upstream_model,
            "content": content,
            "duration": call.seconds,
            "return_last_frame": True,
        }
        if call.resolution:
            body["resolution"] = call.resolution.lower()
        if call.ratio:
            body["ratio"] = call.ratio
        if call.off_peak:
            body["service_tier"] = "flex"
        return UpstreamRequest(_TASKS, self._headers(creds), orjson.dumps(body))

    def parse_submit(self, body: bytes) -> str:
        found = json_object(body).get("id")
        if not isinstance(found, str) or not found or "/" in found:
            raise malformed("a task without an id")
        return found

    def poll_request(self, upstream_id: str, creds: Credentials) -> UpstreamRequest:
        headers = {**creds.headers, **self.auth_headers(creds)}
        return UpstreamRequest(f"{_TASKS}/{upstream_id}", headers, b"")

    def parse_poll(self, body: bytes) -> VideoStatus:
        data = json_object(body)
        phase = _PHASES.get(str(data.get("status")))
        if phase is None:
            raise malformed(f"an unknown task status {str(data.get('status'))[:40]!r}")
        if phase == "failed":
            err = data.get("error")
            message = err.get("message") if isinstance(err, dict) else None
            return VideoStatus("failed", error=str(message or f"task {data.get('status')}"))
        if phase != "succeeded":
            return VideoStatus(phase, 50 if phase == "running" else 0)
        content = data.get("content")
        url = content.get("video_url") if isinstance(content, dict) else None
        if not isinstance(url, str) or not url:
            raise malformed("a finished task without a video_url")
        last = content.get("last_frame_url") if isinstance(content, dict) else None
        cover = Asset(last, absolute=True) if isinstance(last, str) and last else None
        duration = data.get("duration")
        seconds = float(duration) if isinstance(duration, int | float) else None
        return VideoStatus("succeeded", 100, seconds, Asset(url, absolute=True), cover)

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return _CHAT.classify_error(status, headers, body)


_CHAT = OpenAIChat()
