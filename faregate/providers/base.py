"""What every upstream protocol adapter provides, and the internal call it translates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from faregate.billing.types import Usage
from faregate.errors import FailureClass, UpstreamError


@dataclass(slots=True)
class ChatCall:
    """One chat request inside the gateway, in the OpenAI chat shape (the lingua franca)."""

    model: str
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    max_output: int | None
    """The client's output cap; during an attempt, the cap the upstream must honour."""
    request_id: str

    def with_max_output(self, cap: int) -> ChatCall:
        """A copy whose output cap is `cap` (a subclass copies its own fields too; the
        constructor is a quarter of `dataclasses.replace`'s cost on the hot path)."""
        return ChatCall(
            self.model, self.body, self.stream, self.include_usage, cap, self.request_id
        )


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class ChatResult:
    """A whole reply: the OpenAI-shaped body, its usage, and the upstream's own bytes
    when they can be returned unchanged."""

    body: dict[str, Any]
    usage: Usage | None
    raw: bytes | None = None


class StreamEvent:
    """One streamed chunk: the OpenAI-shaped chunk (None for the end marker), the upstream's
    own SSE bytes when they can be forwarded unchanged, usage if this chunk carries it, and
    the text it adds (for estimates when a stream ends early).

    An event made with `unread` keeps its JSON unparsed: most chunks of a stream carry
    neither usage nor a finish reason and are forwarded as the upstream's bytes, so their
    `data` and `text` are parsed only if something reads them (a translation to another
    protocol, or an estimate after a broken stream)."""

    __slots__ = (
        "_body",
        "_data",
        "_read",
        "_text",
        "cost",
        "ends",
        "finish_reason",
        "is_usage_only",
        "parsed",
        "prompt_usage",
        "raw",
        "usage",
    )

    ends: bool
    """Whether this is the end marker (`data` None), told without parsing."""
    parsed: bool
    """Whether `data` and `text` are at hand without parsing."""

    def __init__(
        self,
        data: dict[str, Any] | None,
        raw: bytes | None = None,
        usage: Usage | None = None,
        text: str = "",
        is_usage_only: bool = False,
        finish_reason: str | None = None,
        cost: int | None = None,
        prompt_usage: dict[str, Any] | None = None,
    ) -> None:
        self._data = data
        self.ends = data is None
        self.parsed = True
        self._text = text
        self._body: bytes | None = None
        self._read: Callable[[dict[str, Any]], str] | None = None
        self.raw = raw
        self.usage = usage
        self.is_usage_only = is_usage_only
        self.finish_reason = finish_reason
        self.cost = cost  # set by the pipeline on the chunk that carries usage
        self.prompt_usage = prompt_usage
        """The upstream's exact prompt-side usage sent before the answer (Anthropic's
        `message_start`), as hub usage: `prompt_tokens`, `completion_tokens` and
        `prompt_tokens_details` (`cached_tokens`, `cache_write_tokens`); None when it sent
        none."""

    @classmethod
    def unread(cls, body: bytes, raw: bytes, read: Callable[[dict[str, Any]], str]) -> StreamEvent:
        """A chunk known to carry no usage, no error and no finish reason: forwarded as
        `raw`; its JSON `body` parsed on first use, `read` then giving its text. (Most chunks
        of a stream are made here: the slots are set without `__init__`'s call.)"""
        event: StreamEvent = object.__new__(cls)
        event._data = None  # until parsed
        event._body = body
        event._read = read
        event._text = ""
        event.raw = raw
        event.ends = event.parsed = event.is_usage_only = False
        event.usage = event.finish_reason = event.cost = event.prompt_usage = None
        return event

    def _parse(self) -> None:
        body, read = self._body, self._read
        self._body = self._read = None
        self.parsed = True
        try:
            obj = orjson.loads(body) if body is not None else {}
        except orjson.JSONDecodeError:
            obj = {}
        self._data = obj if isinstance(obj, dict) else {}
        self._text = read(self._data) if read is not None else ""

    @property
    def data(self) -> dict[str, Any] | None:
        if self._body is not None:
            self._parse()
        return self._data

    @data.setter
    def data(self, value: dict[str, Any] | None) -> None:
        self._body = self._read = None
        self._data = value
        self.parsed = True
        self.ends = value is None

    @property
    def text(self) -> str:
        if self._body is not None:
            self._parse()
        return self._text

    def __repr__(self) -> str:
        if self._body is not None:
            return f"StreamEvent(unread={self._body!r})"
        return (
            f"StreamEvent(data={self._data!r}, usage={self.usage!r}, text={self._text!r},"
            f" finish_reason={self.finish_reason!r}, cost={self.cost!r})"
        )


class StreamDecoder(Protocol):
    def feed(self, chunk: bytes) -> list[StreamEvent]: ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to reach one upstream: where, with which key, extra headers, the name of its
    output-cap parameter (OpenAI's newer models take only `max_completion_tokens`), the CA
    bundle its TLS certificate is checked against (None: the system's) and its egress proxy
    as configured (None: from the environment; "": none)."""

    base_url: str
    api_key: str | None
    headers: dict[str, str] = field(default_factory=dict)
    max_tokens_param: str = "max_tokens"
    ca_bundle: str | None = None
    proxy: str | None = None


class Adapter(Protocol):
    """What every adapter (one wire protocol serving one kind) provides: its protocol's name,
    and how an error reply of its upstream is classified."""

    name: str

    def classify_error(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> UpstreamError: ...


class ChatProtocol(Protocol):
    """An upstream chat wire protocol."""

    name: str
    inline_remote_images: bool
    """Whether remote image URLs must be fetched and sent inline (as data URLs)."""

    def build_request(
        self, call: ChatCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest: ...

    def parse_response(self, body: bytes) -> ChatResult: ...

    def stream_decoder(self) -> StreamDecoder: ...

    def classify_error(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> UpstreamError: ...


@dataclass(slots=True)
class EmbedCall:
    """One embeddings request inside the gateway, in the OpenAI embeddings shape."""

    model: str
    inputs: list[str]
    body: dict[str, Any]
    request_id: str


@dataclass(slots=True)
class EmbedResult:
    """The OpenAI-shaped list response, and its usage when the upstream reported it."""

    body: dict[str, Any]
    usage: Usage | None


class EmbeddingsProtocol(Protocol):
    """An upstream embeddings wire protocol."""

    name: str

    def build_embed_request(
        self, call: EmbedCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest: ...

    def parse_embed_response(self, body: bytes, call: EmbedCall) -> EmbedResult: ...

    def classify_error(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> UpstreamError: ...


def reply_object(body: bytes, is_reply: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """A successful reply's JSON object, or a transient upstream error when it is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            FailureClass.TRANSIENT, "the provider returned a body that is not JSON", status=200
        ) from None
    if not isinstance(data, dict) or not is_reply(data):
        raise UpstreamError(
            FailureClass.TRANSIENT, "the provider returned an unexpected body", status=200
        )
    return data


def content_text(content: Any) -> str:
    """The text of a hub message's `content`: the string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "")
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "output_text")
        )
    return ""
