"""Chat calls and stream events that also carry a client's own request or an upstream's own
event in another OpenAI API (Responses, legacy Completions), for upstreams that speak it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faregate.providers.base import ChatCall, StreamEvent


@dataclass(slots=True)
class NativeCall(ChatCall):
    """A hub chat call (what every other upstream is sent) and the client's request in `api`
    ("responses" or "completions"), sent as it is to an upstream that serves that API."""

    api: str = ""
    native: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class NativeEvent(StreamEvent):
    """A hub chunk decoded from an upstream event of another API, and that event itself."""

    native: dict[str, Any] | None = None
