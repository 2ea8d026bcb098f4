"""Simulated video upstreams: the OpenAI Videos API, Gemini Veo's long-running operations and
the Volcengine Ark task API, over one job table. A job is ready after the processing time
(`--video-ms`, or `[sim:ms=N]` in the prompt); `[sim:fail-after=N]` fails it on its N-th
poll, `[sim:never]` never finishes, `[sim:malformed]` answers polls with a broken status,
`[sim:reject]` refuses the submit (400) and `[sim:error]` fails it (500). Finished jobs
serve a small real MP4 and a PNG cover."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from faregate.sim.state import STATE

MEDIA = Path(__file__).parent / "media"
CLIP = (MEDIA / "clip.mp4").read_bytes()
COVER = (MEDIA / "cover.png").read_bytes()
_VEO_RESPONSE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
_DIRECTIVE = re.compile(r"\[sim:([a-z-]+)(?:=(\d+))?\]")


@dataclass(slots=True)
class SimVideo:
    id: str
    protocol: str
    model: str
    prompt: str
    seconds: int
    ready_at: float
    inputs: list[str] = field(default_factory=list)  # roles/types of the files received
    params: dict[str, Any] = field(default_factory=dict)
    polls: int = 0
    fail_after: int | None = None
    never: bool = False
    malformed: bool = False


VIDEOS: web.AppKey[dict[str, SimVideo]] = web.AppKey("faregate_sim_videos", dict)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(
        {"error": {"message": message, "type": "invalid_request_error", "code": None}}, status
    )


def _bearer(request: web.Request) -> bool:
    return request.headers.get("authorization", "").startswith("Bearer ")


def _new(
    request: web.Request, protocol: str, model: str, prompt: str, seconds: int
) -> SimVideo | web.Response:
    directives = {m.group(1): m.group(2) for m in _DIRECTIVE.finditer(prompt)}
    if "reject" in directives:
        return _error(400, "The prompt was rejected (simulated).")
    if "error" in directives:
        return _error(500, "The server had an error (simulated).")
    state = request.app[STATE]
    ms = float(directives["ms"]) if directives.get("ms") else state.video_ms
    fail = directives.get("fail-after")
    job = SimVideo(
        id=secrets.token_hex(8),
        protocol=protocol,
        model=model,
        prompt=prompt,
        seconds=seconds,
        ready_at=time.monotonic() + ms / 1000,
        fail_after=int(fail) if fail else None,
        never="never" in directives,
        malformed="malformed" in directives,
    )
    request.app[VIDEOS][job.id] = job
    state.count_model(model)
    return job


def _phase(request: web.Request, job: SimVideo) -> str:
    """One poll: queued, running, succeeded or failed (counted)."""
    job.polls += 1
    request.app[STATE].count_request(f"video.poll.{job.protocol}")
    if job.fail_after is not None and job.polls >= job.fail_after:
        return "failed"
    if job.never or time.monotonic() < job.ready_at:
        return "queued" if job.polls == 1 else "running"
    return "succeeded"


def _image_ok(data: bytes) -> bool:
    return data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")) or data[8:12] == b"WEBP"


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


# -- OpenAI ---------------------------------------------------------------------


def _openai_video(job: SimVideo, phase: str) -> dict[str, Any]:
    status = {"queued": "queued", "running": "in_progress", "succeeded": "completed"}.get(
        phase, "failed"
    )
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": status,
        "progress": {"queued": 0, "in_progress": 50}.get(status, 100),
        "created_at": int(time.time()),
        "completed_at": int(time.time()) if status == "completed" else None,
        "expires_at": None,
        "seconds": str(job.seconds),
        "size": job.params.get("size", "720x1280"),
        "prompt": job.prompt,
        "remixed_from_video_id": None,
        "error": {"code": "video_generation_failed", "message": "simulated failure"}
        if status == "failed"
        else None,
    }


async def openai_create(request: web.Request) -> web.Response:
    """`POST /v1/videos` (JSON or multipart with `input_reference`)."""
    request.app[STATE].count_request("video.submit.openai")
    if not _bearer(request):
        return _error(401, "Missing bearer key.")
    inputs: list[str] = []
    if request.content_type == "multipart/form-data":
        form = await request.post()
        fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        ref = form.get("input_reference")
        if isinstance(ref, web.FileField):
            data = ref.file.read()
            if not _image_ok(data):
                return _error(400, "input_reference is not an image.")
            inputs.append("input_reference")
    else:
        try:
            fields = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "Invalid JSON.")
    model, prompt = fields.get("model"), fields.get("prompt")
    if not model or not prompt:
        return _error(400, "model and prompt are required.")
    job = _new(request, "openai", str(model), str(prompt), int(fields.get("seconds") or 4))
    if isinstance(job, web.Response):
        return job
    job.inputs = inputs
    job.params = {"size": fields.get("size") or "720x1280"}
    job.polls = 0
    return _json(_openai_video(job, "queued"))


def _find(request: web.Request, key: str) -> SimVideo | None:
    return request.app[VIDEOS].get(request.match_info[key])


async def openai_get(request: web.Request) -> web.Response:
    """`GET /v1/videos/{id}`."""
    job = _find(request, "video_id")
    if not _bearer(request) or job is None or job.protocol != "openai":
        return _error(404, "No such video.")
    phase = _phase(request, job)
    if job.malformed:
        return _json({"id": job.id, "status": "exploded"})
    return _json(_openai_video(job, phase))


async def openai_content(request: web.Request) -> web.Response:
    """`GET /v1/videos/{id}/content?variant=video|thumbnail`."""
    job = _find(request, "video_id")
    if not _bearer(request) or job is None or time.monotonic() < job.ready_at:
        return _error(404, "No such content.")
    request.app[STATE].count_request("video.download")
    if request.query.get("variant", "video") == "thumbnail":
        return web.Response(body=COVER, content_type="image/png")
    return web.Response(body=CLIP, content_type="video/mp4")


# -- Gemini Veo -------------------------------------------------------------------


async def veo_submit(request: web.Request) -> web.Response:
    """`POST /v1beta/models/{model}:predictLongRunning`."""
    request.app[STATE].count_request("video.submit.veo")
    if not request.headers.get("x-goog-api-key"):
        return _google(401, "API key not valid.", "UNAUTHENTICATED")
    try:
        body = orjson.loads(await request.read())
        instance = body["instances"][0]
        prompt = instance["prompt"]
        params = body.get("parameters") or {}
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return _google(400, "instances[0].prompt is required.", "INVALID_ARGUMENT")
    inputs = []
    for name in ("image", "lastFrame"):
        if name in instance:
            data = _b64(instance[name].get("bytesBase64Encoded"))
            if data is None or not _image_ok(data):
                return _google(400, f"{name} is not an image.", "INVALID_ARGUMENT")
            inputs.append(name)
    inputs += ["referenceImage"] * len(instance.get("referenceImages") or [])
    job = _new(
        request,
        "veo",
        request.match_info["model"],
        str(prompt),
        int(params.get("durationSeconds") or 8),
    )
    if isinstance(job, web.Response):
        return job
    job.inputs, job.params = inputs, params
    return _json({"name": f"models/{job.model}/operations/{job.id}"})


def _google(status: int, message: str, code: str) -> web.Response:
    return _json({"error": {"code": status, "message": message, "status": code}}, status)


async def veo_operation(request: web.Request) -> web.Response:
    """`GET /v1beta/models/{model}/operations/{id}`."""
    job = _find(request, "op")
    if not request.headers.get("x-goog-api-key") or job is None:
        return _google(404, "Operation not found.", "NOT_FOUND")
    name = f"models/{job.model}/operations/{job.id}"
    phase = _phase(request, job)
    if job.malformed:
        return _json({"done": "perhaps"})
    if phase in ("queued", "running"):
        return _json({"name": name, "done": False})
    if phase == "failed":
        return _json(
            {"name": name, "done": True, "error": {"code": 13, "message": "simulated failure"}}
        )
    uri = f"{request.scheme}://{request.host}/v1beta/files/{job.id}:download?alt=media"
    sample = {"video": {"uri": uri}}
    return _json(
        {
            "name": name,
            "done": True,
            "response": {
                "@type": _VEO_RESPONSE,
                "generateVideoResponse": {"generatedSamples": [sample]},
            },
        }
    )


async def veo_file(request: web.Request) -> web.Response:
    """`GET /v1beta/files/{id}:download`: with the API key only."""
    job = request.app[VIDEOS].get(request.match_info["file"])
    if not request.headers.get("x-goog-api-key") or job is None:
        return _google(403, "Permission denied.", "PERMISSION_DENIED")
    request.app[STATE].count_request("video.download")
    return web.Response(body=CLIP, content_type="video/mp4")


# -- Volcengine Ark -----------------------------------------------------------------


async def ark_create(request: web.Request) -> web.Response:
    """`POST /api/v3/contents/generations/tasks`."""
    request.app[STATE].count_request("video.submit.ark")
    if not _bearer(request):
        return _error(401, "Missing bearer key.")
    try:
        body = orjson.loads(await request.read())
        content = body["content"]
        prompt = next(c["text"] for c in content if c.get("type") == "text")
    except (orjson.JSONDecodeError, KeyError, TypeError, StopIteration):
        return _error(400, "content with a text item is required.")
    inputs = []
    for item in content:
        if item.get("type") == "image_url":
            data = _b64((item.get("image_url") or {}).get("url"))
            if data is None or not _image_ok(data):
                return _error(400, "image_url is not an image.")
            inputs.append(str(item.get("role")))
        elif item.get("type") in ("video_url", "audio_url"):
            inputs.append(str(item.get("role")))
    job = _new(request, "ark", str(body.get("model")), str(prompt), int(body.get("duration") or 5))
    if isinstance(job, web.Response):
        return job
    job.inputs = inputs
    job.params = {k: body.get(k) for k in ("resolution", "ratio", "return_last_frame")}
    return _json({"id": f"cgt-{job.id}"})


async def ark_get(request: web.Request) -> web.Response:
    """`GET /api/v3/contents/generations/tasks/{id}`."""
    job = request.app[VIDEOS].get(request.match_info["task"].removeprefix("cgt-"))
    if not _bearer(request) or job is None:
        return _error(404, "The task does not exist.")
    phase = _phase(request, job)
    if job.malformed:
        return _json({"id": f"cgt-{job.id}", "status": 42})
    task: dict[str, Any] = {
        "id": f"cgt-{job.id}",
        "model": job.model,
        "status": phase,
        "created_at": int(time.time()),
        "updated_at": int(time.time()),
    }
    if phase == "failed":
        task["error"] = {"code": "InternalServiceError", "message": "simulated failure"}
    if phase == "succeeded":
        base = f"{request.scheme}://{request.host}/sim/files/{job.id}"
        task["content"] = {"video_url": f"{base}.mp4?token=sim"}
        if job.params.get("return_last_frame"):
            task["content"]["last_frame_url"] = f"{base}.png?token=sim"
        task["usage"] = {"completion_tokens": 108900, "total_tokens": 108900}
        task["resolution"] = job.params.get("resolution") or "720p"
        task["ratio"] = job.params.get("ratio") or "16:9"
        task["duration"] = job.seconds
    return _json(task)


async def sim_file(request: web.Request) -> web.Response:
    """`GET /sim/files/{id}.mp4|png`: a finished Ark task's files (signed URLs: no key)."""
    name = request.match_info["name"]
    stem, _, ext = name.rpartition(".")
    if stem not in request.app[VIDEOS] or request.query.get("token") != "sim":
        return _error(403, "Access denied.")
    request.app[STATE].count_request("video.download")
    if ext == "png":
        return web.Response(body=COVER, content_type="image/png")
    return web.Response(body=CLIP, content_type="video/mp4")


async def sim_cover(request: web.Request) -> web.Response:
    """`GET /sim/media/cover.png`: a small image anyone may fetch (input-by-URL tests)."""
    return web.Response(body=COVER, content_type="image/png")


async def sim_job(request: web.Request) -> web.Response:
    """`GET /sim/videos/{id}`: what the simulator received for a job (for tests)."""
    key = request.match_info["id"].removeprefix("cgt-").rpartition("/")[2]
    job = request.app[VIDEOS].get(key)
    if job is None:
        return _error(404, "No such job.")
    return _json(
        {
            "id": job.id,
            "protocol": job.protocol,
            "model": job.model,
            "prompt": job.prompt,
            "seconds": job.seconds,
            "inputs": job.inputs,
            "params": job.params,
            "polls": job.polls,
        }
    )


def add_routes(app: web.Application) -> None:
    """Register the video routes (before the Gemini model routes, which they refine)."""
    app[VIDEOS] = {}
    app.router.add_post("/v1/videos", openai_create)
    app.router.add_get("/v1/videos/{video_id}", openai_get)
    app.router.add_get("/v1/videos/{video_id}/content", openai_content)
    app.router.add_post(r"/v1beta/models/{model:[^/:]+}:predictLongRunning", veo_submit)
    app.router.add_get("/v1beta/models/{model}/operations/{op}", veo_operation)
    app.router.add_get(r"/v1beta/files/{file:[^/:]+}:download", veo_file)
    app.router.add_post("/api/v3/contents/generations/tasks", ark_create)
    app.router.add_get("/api/v3/contents/generations/tasks/{task}", ark_get)
    app.router.add_get("/sim/files/{name}", sim_file)
    app.router.add_get("/sim/videos/{id}", sim_job)
    app.router.add_get("/sim/media/cover.png", sim_cover)
