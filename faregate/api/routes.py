"""Routing a request: every route the gateway serves, as data (path, methods, handler, envelope,
kind, visibility, summary, schemas), mounted once by the app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from faregate.api import (
    admin_catalog,
    admin_governance,
    admin_guards,
    admin_jobs,
    anthropic_models,
    video_llmage,
    video_openai,
)
from faregate.api.admin import AdminAPI
from faregate.api.anthropic import count_tokens_handler, messages_handler
from faregate.api.audio import speech_handler, transcription_handler
from faregate.api.catalog import balance_handler, model_handler, models_handler
from faregate.api.completions import completions_handler
from faregate.api.embeddings import embeddings_handler
from faregate.api.gemini import by_client, generate_handler, get_handler, list_handler
from faregate.api.images import edits_handler, generations_handler
from faregate.api.jobs import job_handler
from faregate.api.media import media_handler
from faregate.api.openai_chat import chat_handler, compat_chat_handler, llmage_chat_handler
from faregate.api.responses import handlers as responses_handlers
from faregate.api.usage import ClientUsage
from faregate.console.routes import console_routes
from faregate.console.web import Console
from faregate.db.engine import AdminDB
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.http.router import Handler, Route, Router, Visibility
from faregate.kinds import Kind
from faregate.pipeline.services import Services

OPENAI_SPEC = "specs/openai-openapi.yaml#/components/schemas/"


class Gateway(admin_catalog.Gateway, Protocol):
    """What the routes need of the app itself."""

    def reload(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Deps:
    """What the handler factories build handlers from."""

    svc: Services
    db: AdminDB
    gateway: Gateway
    admin_key: str | None = None  # FAREGATE_ADMIN_KEY


@dataclass(frozen=True, slots=True)
class RouteDef:
    """One route as data. `handler` builds the handler once the services exist; `kind` makes
    it metered; the schemas name the request and response bodies in the OpenAI spec."""

    path: str
    methods: tuple[str, ...]
    handler: Callable[[Deps], Handler]
    summary: str
    protocol: str = "openai"
    kind: Kind | None = None
    visibility: Visibility = Visibility.PUBLIC
    request_schema: str | None = None
    response_schema: str | None = None
    class_by_model: bool = False
    """The route serves models of several kinds (the chat route): the caller is authenticated
    first, and the handler takes the limits of the model's class once it has read the body."""

    def bind(self, deps: Deps) -> Route:
        return Route(
            self.path,
            frozenset(self.methods),
            self.handler(deps),
            self.protocol,
            self.kind,
            self.visibility,
            self.summary,
            self.class_by_model,
        )


def _openai(name: str) -> str:
    return OPENAI_SPEC + name


def _models(d: Deps) -> Handler:
    """`/v1/models`: the OpenAI list, or Gemini's for a Google-authenticated client, or
    Anthropic's for an Anthropic-authenticated one."""
    listing = by_client(list_handler(d.svc), models_handler(d.svc))
    return anthropic_models.for_anthropic(anthropic_models.list_handler(d.svc), listing)


def _model(d: Deps) -> Handler:
    one = by_client(get_handler(d.svc), model_handler(d.svc))
    return anthropic_models.for_anthropic(anthropic_models.get_handler(d.svc), one)


def _usage(d: Deps) -> Handler:
    return ClientUsage(d.svc, d.db).usage


def _redeem(d: Deps) -> Handler:
    return ClientUsage(d.svc, d.db).redeem


def _openai_routes(base: str) -> list[RouteDef]:
    """The OpenAI-compatible routes under `base` (`/v1`, `/api/v1`)."""
    return [
        RouteDef(
            f"{base}/chat/completions",
            ("POST",),
            lambda d: chat_handler(d.svc),
            "Create a chat completion (streamed or not).",
            kind=Kind.CHAT,
            class_by_model=True,
            request_schema=_openai("CreateChatCompletionRequest"),
            response_schema=_openai("CreateChatCompletionResponse"),
        ),
        RouteDef(
            f"{base}/embeddings",
            ("POST",),
            lambda d: embeddings_handler(d.svc),
            "Create embeddings.",
            kind=Kind.EMBEDDINGS,
            request_schema=_openai("CreateEmbeddingRequest"),
            response_schema=_openai("CreateEmbeddingResponse"),
        ),
        RouteDef(
            f"{base}/audio/transcriptions",
            ("POST",),
            lambda d: transcription_handler(d.svc, "transcribe"),
            "Transcribe audio into text (multipart form).",
            kind=Kind.AUDIO_TRANSCRIPTION,
            request_schema=_openai("CreateTranscriptionRequest"),
            response_schema=_openai("CreateTranscriptionResponseJson"),
        ),
        RouteDef(
            f"{base}/audio/translations",
            ("POST",),
            lambda d: transcription_handler(d.svc, "translate"),
            "Translate audio into English text (multipart form).",
            kind=Kind.AUDIO_TRANSCRIPTION,
            request_schema=_openai("CreateTranslationRequest"),
            response_schema=_openai("CreateTranslationResponseJson"),
        ),
        RouteDef(
            f"{base}/audio/speech",
            ("POST",),
            lambda d: speech_handler(d.svc),
            "Generate speech from text, streamed as it is produced.",
            kind=Kind.AUDIO_SPEECH,
            request_schema=_openai("CreateSpeechRequest"),
        ),
        RouteDef(
            f"{base}/images/generations",
            ("POST",),
            lambda d: generations_handler(d.svc),
            "Create images from a prompt.",
            kind=Kind.IMAGES,
            request_schema=_openai("CreateImageRequest"),
            response_schema=_openai("ImagesResponse"),
        ),
        RouteDef(
            f"{base}/images/edits",
            ("POST",),
            lambda d: edits_handler(d.svc),
            "Edit or extend images (multipart form).",
            kind=Kind.IMAGES,
            request_schema=_openai("CreateImageEditRequest"),
            response_schema=_openai("ImagesResponse"),
        ),
        RouteDef(
            f"{base}/models",
            ("GET",),
            _models,
            "List the models the key may use (Gemini's or Anthropic's list for their clients).",
            response_schema=_openai("ListModelsResponse"),
        ),
        RouteDef(
            f"{base}/models/{{model:path}}",
            ("GET",),
            _model,
            "Describe one model (Gemini's or Anthropic's form for their clients).",
            response_schema=_openai("Model"),
        ),
        RouteDef(
            f"{base}/models/{{model:path}}",
            ("POST",),
            lambda d: generate_handler(d.svc),
            "Gemini methods on a model (`model:generateContent`, ...) under the OpenAI base.",
            protocol="gemini",
            kind=Kind.CHAT,
        ),
        RouteDef(
            f"{base}/client/balance",
            ("GET",),
            lambda d: balance_handler(d.svc),
            "The caller's balance.",
        ),
        *_responses_routes(base),
        RouteDef(
            f"{base}/completions",
            ("POST",),
            lambda d: completions_handler(d.svc),
            "Create a legacy text completion (streamed or not).",
            kind=Kind.CHAT,
            request_schema=_openai("CreateCompletionRequest"),
            response_schema=_openai("CreateCompletionResponse"),
        ),
    ]


def _responses_routes(base: str) -> list[RouteDef]:
    """The Responses API under `base`: create, and the stored responses by id."""
    one = f"{base}/responses/{{response_id}}"
    return [
        RouteDef(
            f"{base}/responses",
            ("POST",),
            lambda d: responses_handlers(d.svc, d.db)["create"],
            "Create a model response (Responses API; streamed or not).",
            kind=Kind.RESPONSES,
            request_schema=_openai("CreateResponse"),
            response_schema=_openai("Response"),
        ),
        RouteDef(
            one,
            ("GET",),
            lambda d: responses_handlers(d.svc, d.db)["retrieve"],
            "Retrieve a stored response.",
            response_schema=_openai("Response"),
        ),
        RouteDef(
            one,
            ("DELETE",),
            lambda d: responses_handlers(d.svc, d.db)["delete"],
            "Delete a stored response.",
        ),
        RouteDef(
            f"{one}/input_items",
            ("GET",),
            lambda d: responses_handlers(d.svc, d.db)["input_items"],
            "List the input items of a stored response.",
            response_schema=_openai("ResponseItemList"),
        ),
    ]


def _gemini_routes(base: str) -> list[RouteDef]:
    """The Gemini-native routes under `base` (`/v1beta`, `/api/v1beta`)."""
    return [
        RouteDef(
            f"{base}/models",
            ("GET",),
            lambda d: list_handler(d.svc),
            "List the models (Gemini).",
            protocol="gemini",
        ),
        RouteDef(
            f"{base}/models/{{model:path}}",
            ("GET",),
            lambda d: get_handler(d.svc),
            "Describe one model (Gemini).",
            protocol="gemini",
        ),
        RouteDef(
            f"{base}/models/{{model:path}}",
            ("POST",),
            lambda d: generate_handler(d.svc),
            "generateContent, streamGenerateContent, countTokens, embedContent (Gemini).",
            protocol="gemini",
            kind=Kind.CHAT,
        ),
    ]


def _client_routes(base: str) -> list[RouteDef]:
    """The caller's own usage and code redemption under `base`."""
    return [
        RouteDef(f"{base}/usage", ("GET",), _usage, "The caller's usage over a date range."),
        RouteDef(f"{base}/redeem", ("POST",), _redeem, "Redeem a credit code."),
    ]


def _video_routes() -> list[RouteDef]:
    """Video jobs: the OpenAI Videos API, the llmage video dialect, and `/v1/jobs`."""
    video_id = "/v1/videos/{video_id}"
    return [
        RouteDef(
            "/v1/videos",
            ("POST",),
            lambda d: video_openai.create_handler(d.svc),
            "Create a video job (JSON, or multipart with input_reference).",
            kind=Kind.VIDEO,
            request_schema=_openai("CreateVideoJsonBody"),
            response_schema=_openai("VideoResource"),
        ),
        RouteDef(
            "/v1/videos",
            ("GET",),
            lambda d: video_openai.list_handler(d.svc),
            "List the caller's video jobs (after, limit, order).",
            response_schema=_openai("VideoListResource"),
        ),
        RouteDef(
            video_id,
            ("GET",),
            lambda d: video_openai.retrieve_handler(d.svc),
            "Retrieve a video job.",
            response_schema=_openai("VideoResource"),
        ),
        RouteDef(
            video_id,
            ("DELETE",),
            lambda d: video_openai.delete_handler(d.svc),
            "Cancel a video job in flight, or delete a finished one and its files.",
            response_schema=_openai("DeletedVideoResource"),
        ),
        RouteDef(
            f"{video_id}/content",
            ("GET",),
            lambda d: video_openai.content_handler(d.svc),
            "Download a finished video or its thumbnail (variant).",
        ),
        RouteDef(
            "/llmage/video",
            ("POST",),
            lambda d: video_llmage.video_handler(d.svc),
            "Submit a video task in the llmage dialect (JSON or multipart; llmid).",
            protocol="llmage",
            kind=Kind.VIDEO,
        ),
        RouteDef(
            "/llmage/tasks",
            ("GET", "POST"),
            lambda d: video_llmage.tasks_handler(d.svc),
            "Query a video task in the llmage dialect (taskid).",
            protocol="llmage",
        ),
        RouteDef(
            "/v1/jobs/{job_id}",
            ("GET",),
            lambda d: job_handler(d.svc),
            "Poll an asynchronous job submitted through the chat route.",
        ),
    ]


CLIENT: tuple[RouteDef, ...] = (
    *_openai_routes("/v1"),
    *_openai_routes("/api/v1"),
    RouteDef(
        "/api/client/balance",
        ("GET",),
        lambda d: balance_handler(d.svc),
        "The caller's balance.",
    ),
    RouteDef(
        "/api/v1/chat",
        ("POST",),
        lambda d: compat_chat_handler(d.svc),
        "Create a chat completion (the compatible short path).",
        kind=Kind.CHAT,
    ),
    RouteDef(
        "/llmage/v1/chat/completions",
        ("POST",),
        lambda d: llmage_chat_handler(d.svc),
        "Create a chat completion in the llmage dialect.",
        protocol="llmage",
        kind=Kind.CHAT,
    ),
    RouteDef(
        "/v1/messages",
        ("POST",),
        lambda d: messages_handler(d.svc),
        "Create a message (Anthropic).",
        protocol="anthropic",
        kind=Kind.CHAT,
    ),
    RouteDef(
        "/v1/messages/count_tokens",
        ("POST",),
        lambda d: count_tokens_handler(d.svc),
        "Count a message's input tokens (Anthropic).",
        protocol="anthropic",
    ),
    *_gemini_routes("/v1beta"),
    *_gemini_routes("/api/v1beta"),
    *_client_routes("/api/client"),
    *_client_routes("/v1/client"),
    *_client_routes("/api/v1/client"),
    *_video_routes(),
    RouteDef(
        "/v1/media/{media_id}",
        ("GET", "HEAD"),
        lambda d: media_handler(d.svc),
        "A generated image, audio or video file by its signed URL (no API key).",
    ),
)
"""The public client routes: the API clients call."""


async def _health(_: Request) -> Response:
    return Response.json({"status": "ok"})


def _metrics(d: Deps) -> Handler:
    metrics = d.svc.metrics

    async def handle(_: Request) -> Response:
        return Response(metrics.render(), 200, [(b"content-type", metrics.content_type.encode())])

    return handle


INTERNAL: tuple[RouteDef, ...] = (
    RouteDef("/health", ("GET",), lambda d: _health, "Liveness.", visibility=Visibility.INTERNAL),
    RouteDef("/metrics", ("GET",), _metrics, "Prometheus metrics.", visibility=Visibility.INTERNAL),
)
"""The operator's probes."""


def table(deps: Deps) -> list[Route]:
    """Every route, bound to its handler: the client routes, the probes, the admin API, and
    the console (with `/openapi.json`, generated from the routes before it)."""
    admin = AdminAPI(deps.svc, deps.db, deps.admin_key, deps.gateway.reload)
    bound = [
        *(route.bind(deps) for route in (*CLIENT, *INTERNAL)),
        *admin.routes(),
        *admin_governance.routes(admin),
        *admin_guards.routes(admin),
        *admin_catalog.routes(admin, deps.gateway),
        *admin_jobs.routes(admin),
    ]
    console = Console(deps.svc, deps.db, deps.gateway)
    return [*bound, *console_routes(console, bound, CLIENT)]


def mount(router: Router, deps: Deps) -> None:
    for route in table(deps):
        router.add_route(route)
