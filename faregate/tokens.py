"""Token arithmetic shared by billing estimates and the provider simulator."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# One token per word run or per punctuation character. Every such piece is at
# least one UTF-8 byte, so the count never exceeds the byte length of the text.
_PIECE = re.compile(r"\w+|[^\w\s]")

MESSAGE_OVERHEAD = 4
"""Tokens a chat format spends per message on role and framing."""

REPLY_PRIMING = 3
"""Tokens a chat format spends priming the assistant's reply."""

IMAGE_TOKENS = 1105
"""Flat token budget for one image part (a high-detail tile budget)."""


def count_text(text: str) -> int:
    """Deterministic token count of a text: word runs and punctuation marks."""
    return len(_PIECE.findall(text))


def split_pieces(text: str) -> list[str]:
    """The pieces `count_text` counts, in order."""
    return _PIECE.findall(text)


def _content_parts(content: Any) -> Iterable[tuple[str, str]]:
    if isinstance(content, str):
        yield "text", content
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                yield "text", part["text"]
            elif kind in ("image_url", "input_image", "image"):
                yield "image", ""
            elif kind == "input_audio":
                yield "audio", ""
            elif kind in ("file", "input_file", "document"):
                # A document's tokens are bounded by its bytes (base64 or text alike).
                yield "text", str(part.get("file") or part.get("source") or part)


def _message_text(message: dict[str, Any]) -> Iterable[tuple[str, str]]:
    yield from _content_parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            fn = call.get("function") or {}
            yield "text", str(fn.get("name", ""))
            yield "text", str(fn.get("arguments", ""))
    if isinstance(message.get("name"), str):
        yield "text", message["name"]


def count_messages(messages: list[Any], tools: Any = None) -> int:
    """Deterministic prompt token count of OpenAI-shaped chat messages."""
    total = REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD
        for kind, text in _message_text(message):
            total += IMAGE_TOKENS if kind in ("image", "audio") else count_text(text)
    if tools:
        total += count_text(_flatten(tools))
    return total


def prompt_upper_bound(messages: list[Any], tools: Any = None) -> int:
    """An upper bound of the prompt tokens any byte-level tokenizer can count.

    A byte-pair token covers at least one byte, so the UTF-8 length of the text
    bounds its token count; framing and images get fixed budgets on top.
    """
    total = REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD + len(str(message.get("role", "")))
        for kind, text in _message_text(message):
            total += IMAGE_TOKENS if kind in ("image", "audio") else len(text.encode())
    if tools:
        total += len(_flatten(tools).encode())
    return total


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(f"{k} {_flatten(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(_flatten(v) for v in value)
    return str(value)
