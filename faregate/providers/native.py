"""Chat calls and stream events that also carry a client's own request or an upstream's own
event in another OpenAI API (Responses, legacy Completions), for upstreams that speak it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faregate.billing.types import Usage
from faregate.providers.base import ChatCall, StreamEvent


@dataclass(slots=True)
class NativeCall(ChatCall):
    """A hub chat call (what every other upstream is sent) and the client's request in `api`
    ("responses" or "completions"), sent as it is to an upstream that serves that API."""

    api: str = ""
    native: dict[str, Any] = field(default_factory=dict)

    def with_max_output(self, cap: int) -> NativeCall:
        return NativeCall(
            self.model,
            self.body,
            self.stream,
            self.include_usage,
            cap,
            self.request_id,
            self.api,
            self.native,
        )


class NativeEvent(StreamEvent):
    """A hub chunk decoded from an upstream event of another API, and that event itself."""

    __slots__ = ("native",)

    def __init__(
        self,
        data: dict[str, Any] | None,
        *,
        text: str = "",
        usage: Usage | None = None,
        finish_reason: str | None = None,
        native: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(data, usage=usage, text=text, finish_reason=finish_reason)
        self.native = native
