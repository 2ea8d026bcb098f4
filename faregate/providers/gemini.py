"""The Gemini upstream wire protocol (pure translation to and from the internal chat shape)."""

from __future__ import annotations

from faregate.providers.openai import OpenAIChat


class GeminiGenerate(OpenAIChat):
    """Placeholder until the Gemini translation lands."""

    name = "gemini"
