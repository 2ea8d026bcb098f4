"""Gemini Veo upstream: `models/{model}:predictLongRunning`, then the operation polled by
name until `done`; the finished video's URI is fetched with the API key."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from faregate.errors import UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest
from faregate.providers.gemini import classify
from faregate.providers.video import (
    Asset,
    InputFile,
    VideoCall,
    VideoStatus,
    count,
    json_object,
    malformed,
)

_RESOLUTIONS = {"720p", "1080p", "4k"}


def _image(f: InputFile) -> dict[str, str]:
    return {"bytesBase64Encoded": base64.b64encode(f.data).decode(), "mimeType": f.content_type}


class VeoVideo:
    """Videos over the Gemini API's long-running operations."""

    name = "gemini"

    def auth_headers(self, creds: Credentials) -> dict[str, str]:
        return {"x-goog-api-key": creds.api_key} if creds.api_key else {}

    def _headers(self, creds: Credentials) -> dict[str, str]:
        return {"content-type": "application/json", **creds.headers, **self.auth_headers(creds)}

    def unsupported(self, call: VideoCall) -> str | None:
        if count(call, "reference_video", "reference_audio"):
            return "Veo takes no reference video or audio"
        if count(call, "reference_image") > 3:
            return "Veo takes at most 3 reference images"
        return None

    def submit_request(
        self, call: VideoCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        instance: dict[str, Any] = {"prompt": call.prompt}
        refs = []
        for f in call.files:
            if f.role == "first_frame":
                instance["image"] = _image(f)
            elif f.role == "last_frame":
                instance["lastFrame"] = _image(f)
            elif f.role == "reference_image":
                refs.append({"image": _image(f), "referenceType": "asset"})
        if refs:
            instance["referenceImages"] = refs
        params: dict[str, Any] = {"durationSeconds": call.seconds}
        if call.ratio and call.ratio != "adaptive":
            params["aspectRatio"] = call.ratio
        resolution = (call.resolution or "").lower()
        if resolution in _RESOLUTIONS:
            params["resolution"] = resolution
        if call.negative_prompt:
            params["negativePrompt"] = call.negative_prompt
        model = upstream_model.removeprefix("models/")
        body = orjson.dumps({"instances": [instance], "parameters": params})
        return UpstreamRequest(
            f"/v1beta/models/{model}:predictLongRunning", self._headers(creds), body
        )

    def parse_submit(self, body: bytes) -> str:
        name = json_object(body).get("name")
        if not isinstance(name, str) or not name or ".." in name:
            raise malformed("an operation without a name")
        return name

    def poll_request(self, upstream_id: str, creds: Credentials) -> UpstreamRequest:
        headers = {**creds.headers, **self.auth_headers(creds)}
        return UpstreamRequest(f"/v1beta/{upstream_id}", headers, b"")

    def parse_poll(self, body: bytes) -> VideoStatus:
        data = json_object(body)
        if not isinstance(data.get("name"), str):
            raise malformed("an operation without a name")
        if not data.get("done"):
            meta = data.get("metadata")
            progress = meta.get("progressPercent") if isinstance(meta, dict) else None
            pct = int(progress) if isinstance(progress, int | float) else 0
            return VideoStatus("running", pct)
        err = data.get("error")
        if isinstance(err, dict):
            return VideoStatus("failed", error=str(err.get("message") or "generation failed"))
        response = data.get("response")
        gen = response.get("generateVideoResponse") if isinstance(response, dict) else None
        samples = gen.get("generatedSamples") if isinstance(gen, dict) else None
        uri = None
        if isinstance(samples, list) and samples and isinstance(samples[0], dict):
            video = samples[0].get("video")
            uri = video.get("uri") if isinstance(video, dict) else None
        if not isinstance(uri, str) or not uri:
            reasons = gen.get("raiMediaFilteredReasons") if isinstance(gen, dict) else None
            if reasons:
                return VideoStatus("failed", error=f"filtered: {reasons}")
            raise malformed("a finished operation without a video")
        return VideoStatus("succeeded", 100, None, Asset(uri, absolute=True))

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return classify(status, headers, body)
