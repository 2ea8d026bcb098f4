"""Upstream protocols by name: a dict, not a chain of ifs."""

from __future__ import annotations

from faregate.providers.base import ChatProtocol
from faregate.providers.openai import OpenAIChat

CHAT_PROTOCOLS: dict[str, ChatProtocol] = {
    "openai": OpenAIChat(),
}
