"""Simulator application factory and route table."""

from __future__ import annotations

from aiohttp import web

from faregate.sim import anthropic, gemini, openai_audio, openai_images, video
from faregate.sim.openai_chat import chat_completions
from faregate.sim.openai_common import json_response, list_models, retrieve_model
from faregate.sim.openai_completions import completions
from faregate.sim.openai_embeddings import embeddings
from faregate.sim.openai_responses import responses
from faregate.sim.state import STATE, SimState

UPLOAD_LIMIT = 64 * 1024 * 1024
"""The largest request body the simulator reads (an audio upload, inline media)."""


async def health(request: web.Request) -> web.Response:
    """`GET /health`: liveness."""
    return json_response({"status": "ok"})


async def stats(request: web.Request) -> web.Response:
    """`GET /sim/stats`: request counters since start or the last reset."""
    return json_response(request.app[STATE].snapshot())


async def reset(request: web.Request) -> web.Response:
    """`POST /sim/reset`: zero the request and `fail_times` counters."""
    request.app[STATE].reset()
    return json_response({"ok": True})


def create_app(
    *, latency_ms: float = 0.0, chunk_delay_ms: float = 0.0, video_ms: float = 200.0
) -> web.Application:
    """A simulator application; the delays are defaults that fault scripts override."""
    app = web.Application(client_max_size=UPLOAD_LIMIT)
    app[STATE] = SimState(latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms, video_ms=video_ms)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", retrieve_model)
    app.router.add_get("/health", health)
    app.router.add_get("/sim/stats", stats)
    app.router.add_post("/sim/reset", reset)
    anthropic.add_routes(app)
    video.add_routes(app)
    gemini.add_routes(app)
    openai_audio.add_routes(app)
    openai_images.add_routes(app)
    return app
