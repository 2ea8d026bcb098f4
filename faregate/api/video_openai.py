"""The OpenAI Videos API to clients: create (JSON or multipart with `input_reference`),
retrieve, list, download content, delete; one job engine behind it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faregate.api.common import authenticate, form_body, json_body, request_id
from faregate.api.video_input import check_count, inline, seconds, text, upload
from faregate.billing.jobs import FAILED, QUEUED, RUNNING, SUCCEEDED, Job, Jobs
from faregate.errors import BadRequest, NotFound
from faregate.http.request import Request
from faregate.http.responses import BytesStream, Response
from faregate.jobs import views
from faregate.pipeline import video
from faregate.pipeline.services import Services
from faregate.providers.video import InputFile, VideoCall

DEFAULT_MODEL = "sora-2"  # what the OpenAI API assumes when `model` is left out
DEFAULT_SIZE = "720x1280"  # and `size`
STATUS = {QUEUED: "queued", RUNNING: "in_progress", SUCCEEDED: "completed", FAILED: "failed"}
VARIANTS = {"video": "video", "thumbnail": "cover"}


def video_object(job: Job) -> dict[str, Any]:
    """A job as the Videos API's `video` object."""
    status = STATUS.get(job.state, "failed")
    expires = views.media_item(job, "video")
    size = views.stored(job, "size") or (
        None if job.surface == "openai" else views.stored(job, "resolution")
    )
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": status,
        "progress": {"queued": 0, "in_progress": 50}.get(status, 100),
        "created_at": job.created_at // 1000,
        "completed_at": job.finished_at // 1000 if job.finished_at else None,
        "expires_at": int(expires.expires) if expires is not None else None,
        "seconds": str(int(views.seconds_of(job))),
        "size": size or DEFAULT_SIZE,
        "prompt": views.stored(job, "prompt"),
        "remixed_from_video_id": None,
        "error": {"code": "video_generation_failed", "message": job.error}
        if job.state == FAILED
        else None,
    }


async def _call(svc: Services, req: Request) -> VideoCall:
    ctype = req.headers.get("content-type", "").lower()
    files: list[InputFile] = []
    if ctype.startswith("multipart/form-data"):
        form = await form_body(svc, req)
        fields: dict[str, Any] = {k: form.get(k) for k in ("model", "prompt", "seconds", "size")}
        part = form.file("input_reference")
        if part is not None:
            files.append(await upload(svc, "first_frame", part, "input_reference"))
        else:  # a reference object sent as form fields: input_reference[image_url]
            ref = form.get("input_reference") or form.get("input_reference[image_url]")
            if ref:
                files.append(await inline(svc, "first_frame", ref, "input_reference"))
    else:
        fields = await json_body(svc, req)
        ref = fields.get("input_reference")
        if ref is not None:
            if isinstance(ref, dict) and ref.get("file_id"):
                raise BadRequest(
                    "'input_reference.file_id' is not supported here; send image_url or a file.",
                    code="unsupported_parameter",
                    param="input_reference",
                )
            files.append(await inline(svc, "first_frame", ref, "input_reference"))
    check_count(svc, files)
    model = text(fields.get("model"), "model") or DEFAULT_MODEL
    prompt = text(fields.get("prompt"), "prompt", required=True)
    assert prompt is not None
    spec = svc.config.video.model(model)
    secs = seconds(fields.get("seconds"), "seconds", spec.default_seconds)
    video.check_seconds(svc, model, secs, "seconds")
    size = text(fields.get("size"), "size")
    return VideoCall(
        model=model,
        prompt=prompt,
        seconds=secs,
        request_id=request_id(),
        size=size,
        resolution=None if size else spec.default_resolution,
        files=files,
    )


def create_handler(svc: Services) -> Callable[[Request], Any]:
    """`POST /v1/videos`."""

    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        call = await _call(svc, req)
        job = await video.submit(svc, key, call, "openai")
        return Response.json(video_object(job))

    return handle


def retrieve_handler(svc: Services) -> Callable[[Request], Any]:
    """`GET /v1/videos/{video_id}`."""

    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        job = await views.own_job(svc, key, req.params["video_id"], "video_id")
        return Response.json(video_object(job))

    return handle


def list_handler(svc: Services) -> Callable[[Request], Any]:
    """`GET /v1/videos?after=&limit=&order=`."""

    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        q = req.query
        try:
            limit = int(q.get("limit") or 20)
        except ValueError:
            raise BadRequest("'limit' must be an integer.", param="limit") from None
        if not 1 <= limit <= 100:
            raise BadRequest("'limit' must be between 1 and 100.", param="limit")
        order = q.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise BadRequest("'order' must be 'asc' or 'desc'.", param="order")
        jobs = await Jobs(svc.store).list_jobs(
            account_id=key.account_id,
            limit=limit + 1,
            after=q.get("after") or None,
            newest_first=order == "desc",
            kind="video",
        )
        data = [video_object(j) for j in jobs[:limit]]
        return Response.json(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(jobs) > limit,
            }
        )

    return handle


def content_handler(svc: Services) -> Callable[[Request], Any]:
    """`GET /v1/videos/{video_id}/content?variant=video|thumbnail`: the bytes, streamed from
    the gateway's media store."""

    async def handle(req: Request) -> BytesStream:
        key = await authenticate(svc, req)
        job = await views.own_job(svc, key, req.params["video_id"], "video_id")
        variant = req.query.get("variant") or "video"
        if variant not in VARIANTS and variant != "spritesheet":
            raise BadRequest("'variant' must be video, thumbnail or spritesheet.", param="variant")
        if job.state != SUCCEEDED:
            raise BadRequest(
                f"The video is {STATUS.get(job.state, job.state)}; its content is not ready.",
                code="video_not_ready",
            )
        item = views.media_item(job, VARIANTS.get(variant, ""))
        opened = await svc.media.open(item.id) if item is not None and svc.media else None
        if opened is None:
            raise NotFound(f"The video has no {variant} (or it has expired).", param="variant")
        found, chunks = opened
        return BytesStream(chunks, found.content_type, length=found.size)

    return handle


def delete_handler(svc: Services) -> Callable[[Request], Any]:
    """`DELETE /v1/videos/{video_id}`: a job in flight is canceled (its hold released); a
    finished one is deleted with its files."""

    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        job = await views.own_job(svc, key, req.params["video_id"], "video_id")
        await views.delete(svc, key, job)
        return Response.json({"id": job.id, "object": "video.deleted", "deleted": True})

    return handle
