"""Adapters by wire protocol and kind: one table of what each protocol can serve."""

from __future__ import annotations

import importlib
from functools import cache
from typing import cast

from faregate.kinds import Kind
from faregate.providers.base import Adapter, ChatProtocol, EmbeddingsProtocol
from faregate.providers.video import VideoProtocol

# (wire protocol, kind) -> "module:Class"; modules are imported on first use. A new kind on
# a protocol is one entry here (and its adapter module).
ADAPTERS: dict[tuple[str, Kind], str] = {
    ("openai", Kind.CHAT): "faregate.providers.openai:OpenAIChat",
    ("anthropic", Kind.CHAT): "faregate.providers.anthropic:AnthropicMessages",
    ("gemini", Kind.CHAT): "faregate.providers.gemini:GeminiGenerate",
    ("openai-responses", Kind.CHAT): "faregate.providers.openai_responses:OpenAIResponses",
    ("openai", Kind.EMBEDDINGS): "faregate.providers.openai:OpenAIEmbeddings",
    ("gemini", Kind.EMBEDDINGS): "faregate.providers.gemini:GeminiEmbeddings",
    ("openai", Kind.AUDIO_SPEECH): "faregate.providers.openai_audio:OpenAISpeech",
    ("openai", Kind.AUDIO_TRANSCRIPTION): "faregate.providers.openai_audio:OpenAITranscription",
    ("gemini", Kind.AUDIO_SPEECH): "faregate.providers.gemini_audio:GeminiSpeech",
    ("gemini", Kind.AUDIO_TRANSCRIPTION): "faregate.providers.gemini_audio:GeminiTranscription",
    ("openai", Kind.IMAGES): "faregate.providers.openai_images:OpenAIImages",
    ("gemini", Kind.IMAGES): "faregate.providers.gemini_images:GeminiImages",
    ("openai", Kind.VIDEO): "faregate.providers.openai_video:OpenAIVideo",
    ("gemini", Kind.VIDEO): "faregate.providers.veo:VeoVideo",
    ("ark", Kind.VIDEO): "faregate.providers.ark_video:ArkVideo",
}


def kinds_of(protocol: str) -> tuple[Kind, ...]:
    """The kinds the wire protocol `protocol` can serve, in the order of `Kind`."""
    return tuple(k for k in Kind if (protocol, k) in ADAPTERS)


@cache
def adapter(protocol: str, kind: Kind) -> Adapter:
    """The adapter serving `kind` over the wire protocol `protocol` (KeyError if none)."""
    module, _, cls = ADAPTERS[(protocol, kind)].partition(":")
    found: Adapter = getattr(importlib.import_module(module), cls)()
    return found


def video_protocol(name: str) -> VideoProtocol:
    """The video adapter of the wire protocol `name`."""
    return cast(VideoProtocol, adapter(name, Kind.VIDEO))


def chat_protocol(name: str) -> ChatProtocol:
    """The chat adapter of the wire protocol `name`."""
    return cast(ChatProtocol, adapter(name, Kind.CHAT))


def embeddings_protocol(name: str) -> EmbeddingsProtocol:
    """The embeddings adapter of the wire protocol `name`."""
    return cast(EmbeddingsProtocol, adapter(name, Kind.EMBEDDINGS))
