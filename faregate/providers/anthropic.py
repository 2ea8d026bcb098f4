"""The Anthropic upstream wire protocol (pure translation to and from the internal chat shape)."""

from __future__ import annotations

from faregate.providers.openai import OpenAIChat


class AnthropicMessages(OpenAIChat):
    """Placeholder until the Anthropic translation lands."""

    name = "anthropic"
