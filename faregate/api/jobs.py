"""Video jobs in the chat dialect: `POST /v1/chat/completions` with a video model submits a
job (`{data: {id, status, polling_url}, _balancer}`), `GET /v1/jobs/{id}` polls it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faregate.api.common import authenticate, request_id, usd_number
from faregate.api.video_input import check_count, inline, seconds, text
from faregate.billing.jobs import FAILED, QUEUED, RUNNING, SUCCEEDED, Job
from faregate.billing.types import KeyRecord
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.jobs import views
from faregate.pipeline import video
from faregate.pipeline.services import Services
from faregate.providers.video import InputFile, VideoCall

STATUS = {QUEUED: "pending", RUNNING: "processing", SUCCEEDED: "completed", FAILED: "failed"}


def _prompt(body: dict[str, Any]) -> Any:
    """`prompt`, else the text of the last user message."""
    if body.get("prompt") is not None:
        return body["prompt"]
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    parts = [p.get("text") for p in content if isinstance(p, dict)]
                    return " ".join(p for p in parts if isinstance(p, str)) or None
    return None


async def chat_surface(
    svc: Services, req: Request, body: dict[str, Any], key: KeyRecord
) -> Response:
    """A chat-completions body whose model is a video model: submit the job."""
    model = str(body.get("model"))
    prompt = text(_prompt(body), "prompt", required=True)
    assert prompt is not None
    spec = svc.config.video.model(model)
    secs = seconds(body.get("duration"), "duration", spec.default_seconds)
    video.check_seconds(svc, model, secs, "duration")
    files: list[InputFile] = []
    for name, role in (("image", "first_frame"), ("last_frame", "last_frame")):
        if body.get(name) is not None:
            files.append(await inline(svc, role, body[name], name))  # type: ignore[arg-type]
    check_count(svc, files)
    resolution = text(body.get("resolution"), "resolution") or spec.default_resolution
    call = VideoCall(
        model=model,
        prompt=prompt,
        seconds=secs,
        request_id=request_id(),
        resolution=resolution.lower() if resolution else None,
        ratio=text(body.get("aspect_ratio"), "aspect_ratio"),
        negative_prompt=text(body.get("negative_prompt"), "negative_prompt"),
        files=files,
    )
    job = await video.submit(svc, key, call, "chat")
    return Response.json(
        {
            "data": {"id": job.id, "status": "pending", "polling_url": f"/v1/jobs/{job.id}"},
            "_balancer": {"job_id": job.id, "model_used": job.model},
        }
    )


def job_view(svc: Services, req: Request, job: Job) -> dict[str, Any]:
    data: dict[str, Any] = {"id": job.id, "status": STATUS.get(job.state, "failed")}
    reply: dict[str, Any] = {"data": data}
    if job.state == SUCCEEDED:
        data["video_url"] = views.media_url(svc, req, job, "video")
        cover = views.media_url(svc, req, job, "cover")
        if cover:
            data["thumbnail_url"] = cover
        cost = views.cost_of(job)
        reply["_balancer"] = {
            "credits_used": cost,
            "cost_usd": usd_number(svc, cost),
            "duration_seconds": views.seconds_of(job),
            "model_used": job.model,
        }
    elif job.state == FAILED:
        data["error"] = {"message": job.error or "the job failed", "code": "job_failed"}
    return reply


def job_handler(svc: Services) -> Callable[[Request], Any]:
    """`GET /v1/jobs/{job_id}`."""

    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        job = await views.own_job(svc, key, req.params["job_id"], "job_id")
        return Response.json(job_view(svc, req, job))

    return handle
