"""Models of other kinds reached through `POST /v1/chat/completions`: one entry per kind."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from faregate.billing.types import KeyRecord
from faregate.http.request import Request
from faregate.http.responses import Response, StreamResponse
from faregate.kinds import Kind
from faregate.pipeline.services import Services

ChatSurface = Callable[
    [Services, Request, dict[str, Any], KeyRecord], Awaitable[Response | StreamResponse]
]
"""Serves a chat-completions body whose model is of another kind (the model's kind, never
the body's fields, picks the surface)."""

# kind -> "module:function"; a kind reachable through the chat route is one entry here.
SURFACES: dict[Kind, str] = {
    Kind.AUDIO_TRANSCRIPTION: "faregate.api.audio_chat:transcription_surface",
    Kind.AUDIO_SPEECH: "faregate.api.audio_chat:speech_surface",
    Kind.IMAGES: "faregate.api.image_chat:chat_images",
    Kind.VIDEO: "faregate.api.jobs:chat_surface",
}


@cache
def surface(kind: Kind) -> ChatSurface | None:
    """The chat surface of `kind`, or None when that kind is not served through chat."""
    target = SURFACES.get(kind)
    if target is None:
        return None
    module, _, name = target.partition(":")
    found: ChatSurface = getattr(importlib.import_module(module), name)
    return found
