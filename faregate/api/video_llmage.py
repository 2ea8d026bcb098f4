"""The llmage video dialect: `POST /llmage/video` (JSON or multipart, `llmid` picks the model
through `[video.aliases]`) answers `{taskid, status}`; `GET|POST /llmage/tasks?taskid=`
answers the task with its usage and signed cover and video URLs. Errors: `{"error": "..."}`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from faregate.api.common import authenticate, form_body, json_body, request_id
from faregate.api.video_input import check_count, inline, seconds, text, upload
from faregate.billing.jobs import FAILED, QUEUED, RUNNING, SUCCEEDED, Job
from faregate.errors import BadRequest, NotFound
from faregate.http.multipart import Form
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.jobs import views
from faregate.pipeline import video
from faregate.pipeline.services import Services
from faregate.providers.video import InputFile, Role, VideoCall

TEXT_FIELDS = (
    "llmid",
    "model",
    "prompt",
    "resolution",
    "ratio",
    "radio",
    "duration",
    "size",
    "negative_prompt",
    "off_peak",
)
# field -> the role of its files; `image1_file` sent twice means first and last frame
FILE_FIELDS: tuple[tuple[str, Role], ...] = (
    ("image1_file", "first_frame"),
    ("image_file1", "first_frame"),
    ("image2_file", "last_frame"),
    ("image_file2", "last_frame"),
    ("image_files", "reference_image"),
    ("video_files", "reference_video"),
    ("audio_files", "reference_audio"),
)
ACTIONS = {
    "t2v": "text2video",
    "i2v": "image2video",
    "r2v": "reference2video",
}


def resolve_model(svc: Services, llmid: str, model: str | None) -> str:
    """The catalog model of a seed id (`llmid/model` first, then `llmid`), or a model's own
    name; 404 naming `llmid` otherwise."""
    aliases = svc.config.video.aliases
    for name in ((f"{llmid}/{model}" if model else None), llmid):
        if name and name in aliases:
            return aliases[name]
    entry = svc.catalog.models.get(llmid)
    if entry is not None and entry.kind == "video":
        return llmid
    raise NotFound(f"Unknown llmid: {llmid}", code="model_not_found", param="llmid")


async def _files(svc: Services, form: Form | None, body: dict[str, Any]) -> list[InputFile]:
    out: list[InputFile] = []
    for field, role in FILE_FIELDS:
        values: list[Any] = []
        if form is not None:
            values = [v for k, v in form.items if k in (field, f"{field}[]")]
        else:
            raw = body.get(field)
            values = raw if isinstance(raw, list) else [] if raw is None else [raw]
        for i, value in enumerate(values):
            this: Role = "last_frame" if field == "image1_file" and i == 1 else role
            if role == "first_frame" and i > 1:
                raise BadRequest(f"'{field}' takes at most two files.", param=field)
            if isinstance(value, str):
                if value:
                    out.append(await inline(svc, this, value, field))
            else:
                out.append(await upload(svc, this, value, field))
    check_count(svc, out)
    return out


def _action(files: list[InputFile]) -> str:
    if any(f.role.startswith("reference") for f in files):
        return "r2v"
    return "i2v" if files else "t2v"


async def _call(svc: Services, req: Request) -> tuple[VideoCall, str]:
    ctype = req.headers.get("content-type", "").lower()
    form = await form_body(svc, req) if ctype.startswith("multipart/form-data") else None
    body: dict[str, Any]
    if form is not None:
        body = {k: form.get(k) for k in TEXT_FIELDS}
    elif ctype.startswith("application/x-www-form-urlencoded"):
        raw = await req.body(svc.config.server.max_body_bytes)
        body = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    else:
        body = await json_body(svc, req)
    llmid = text(body.get("llmid"), "llmid", required=True)
    assert llmid is not None
    model = resolve_model(svc, llmid, text(body.get("model"), "model"))
    prompt = text(body.get("prompt"), "prompt", required=True)
    assert prompt is not None
    spec = svc.config.video.model(model)
    secs = seconds(body.get("duration"), "duration", spec.default_seconds)
    video.check_seconds(svc, model, secs, "duration")
    files = await _files(svc, form, body)
    size = text(body.get("size"), "size")
    resolution = text(body.get("resolution"), "resolution")
    call = VideoCall(
        model=model,
        prompt=prompt,
        seconds=secs,
        request_id=request_id(),
        resolution=(resolution or spec.default_resolution or "").lower() or None,
        size=size.replace("*", "x") if size else None,
        ratio=text(body.get("ratio"), "ratio") or text(body.get("radio"), "radio"),
        negative_prompt=text(body.get("negative_prompt"), "negative_prompt"),
        off_peak=str(body.get("off_peak") or "").upper() in ("Y", "YES", "TRUE", "1"),
        files=files,
    )
    return call, _action(files)


def video_handler(svc: Services) -> Callable[[Request], Any]:
    """`POST /llmage/video`."""

    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        call, _ = await _call(svc, req)
        job = await video.submit(svc, key, call, "llmage")
        return Response.json({"taskid": job.id, "status": "CREATED"})

    return handle


def task_status(job: Job) -> str:
    if job.state == QUEUED:
        return "CREATED" if job.polls == 0 else "PENDING"
    return {RUNNING: "RUNNING", SUCCEEDED: "SUCCEEDED", FAILED: "FAILED"}.get(job.state, "FAILED")


def _usage(job: Job) -> dict[str, Any]:
    files = views.stored(job, "files") or []
    action = (
        "r2v" if any(str(f).startswith("reference") for f in files) else "i2v" if files else "t2v"
    )
    return {
        "action": action,
        "type": ACTIONS[action],
        "model": job.model,
        "resolution": views.stored(job, "resolution") or views.stored(job, "size"),
        "duration": views.seconds_of(job),
        "credits": views.cost_of(job),
        "off_peak": bool(views.stored(job, "off_peak")),
    }


def tasks_handler(svc: Services) -> Callable[[Request], Any]:
    """`GET|POST /llmage/tasks?taskid=`."""

    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        taskid = req.query.get("taskid")
        if not taskid and req.method == "POST":
            ctype = req.headers.get("content-type", "").lower()
            if ctype.startswith("application/json"):
                taskid = text((await json_body(svc, req)).get("taskid"), "taskid")
        if not taskid:
            raise BadRequest("Missing required parameter: taskid", param="taskid")
        job = await views.own_job(svc, key, taskid, "taskid")
        reply: dict[str, Any] = {"status": task_status(job), "taskid": job.id}
        if job.state == SUCCEEDED:
            reply["usage"] = _usage(job)
            reply["image"] = views.media_url(svc, req, job, "cover")
            reply["video"] = views.media_url(svc, req, job, "video")
        elif job.state == FAILED:
            reply["error"] = job.error
        return Response.json(reply)

    return handle
