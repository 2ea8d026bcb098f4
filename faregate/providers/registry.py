"""Upstream protocols by name: a dict, not a chain of ifs."""

from __future__ import annotations

import importlib
from functools import cache

from faregate.providers.base import ChatProtocol, EmbeddingsProtocol

# name -> "module:Class"; modules are imported on first use.
CHAT_PROTOCOLS: dict[str, str] = {
    "openai": "faregate.providers.openai:OpenAIChat",
    "anthropic": "faregate.providers.anthropic:AnthropicMessages",
    "gemini": "faregate.providers.gemini:GeminiGenerate",
}


@cache
def chat_protocol(name: str) -> ChatProtocol:
    """The adapter for the chat wire protocol `name`."""
    module, _, cls = CHAT_PROTOCOLS[name].partition(":")
    adapter: ChatProtocol = getattr(importlib.import_module(module), cls)()
    return adapter


EMBEDDINGS_PROTOCOLS: dict[str, str] = {
    "openai": "faregate.providers.openai:OpenAIEmbeddings",
    "gemini": "faregate.providers.gemini:GeminiEmbeddings",
}


@cache
def embeddings_protocol(name: str) -> EmbeddingsProtocol | None:
    """The embeddings adapter for the wire protocol `name`, if it has one."""
    target = EMBEDDINGS_PROTOCOLS.get(name)
    if target is None:
        return None
    module, _, cls = target.partition(":")
    adapter: EmbeddingsProtocol = getattr(importlib.import_module(module), cls)()
    return adapter
