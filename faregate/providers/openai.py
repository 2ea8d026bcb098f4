"""The OpenAI chat protocol, spoken by OpenAI and every OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

import orjson

from faregate.billing.types import Usage
from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import (
    ChatCall,
    ChatResult,
    Credentials,
    EmbedCall,
    EmbedResult,
    StreamEvent,
    UpstreamRequest,
    reply_object,
)
from faregate.providers.sse import SSEDecoder

# Gemini thinking levels and the nearest OpenAI reasoning effort.
_THINKING_TO_EFFORT = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}


def usage_from(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt = data.get("prompt_tokens")
    completion = data.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    pdet = data.get("prompt_tokens_details") or {}
    cdet = data.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=int(pdet.get("cached_tokens") or 0) if isinstance(pdet, dict) else 0,
        reasoning_tokens=int(cdet.get("reasoning_tokens") or 0) if isinstance(cdet, dict) else 0,
    )


def _retry_after(headers: dict[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _effort_for_budget(budget: int) -> str | None:
    if budget <= 0:
        return None
    return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"


_MESSAGE_ONLY_IN_HUB = ("thinking_blocks", "is_error")


def _plain_part(part: Any) -> Any:
    if isinstance(part, dict) and "cache_control" in part:
        return {k: v for k, v in part.items() if k != "cache_control"}
    return part


def _plain_message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {k: v for k, v in message.items() if k not in _MESSAGE_ONLY_IN_HUB}
    content = out.get("content")
    if isinstance(content, list):
        out["content"] = [_plain_part(p) for p in content]
    return out


def _without_hub_fields(source: dict[str, Any]) -> dict[str, Any]:
    """A copy of the hub body without what only the gateway's other protocols understand:
    Anthropic thinking blocks, cache-control marks and tool-error flags are dropped, and a
    thinking budget becomes the nearest reasoning effort (up to 2048 tokens low, up to 8192
    medium, above high). `top_k` and Gemini's `extra_content` stay: OpenAI-compatible servers
    (vLLM, Gemini's own OpenAI endpoint) take them."""
    body = dict(source)
    budget = body.pop("thinking_budget", None)
    if isinstance(budget, int) and "reasoning_effort" not in body:
        effort = _effort_for_budget(budget)
        if effort:
            body["reasoning_effort"] = effort
    messages = body.get("messages")
    if isinstance(messages, list) and any(
        isinstance(m, dict)
        and (
            any(k in m for k in _MESSAGE_ONLY_IN_HUB)
            or (
                isinstance(m.get("content"), list)
                and any(isinstance(p, dict) and "cache_control" in p for p in m["content"])
            )
        )
        for m in messages
    ):
        body["messages"] = [_plain_message(m) for m in messages]
    tools = body.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and "cache_control" in t for t in tools):
        body["tools"] = [_plain_part(t) for t in tools]
    return body


def _plain(data: bytes) -> bool:
    """Whether a chunk can be forwarded without parsing it: no error in it, and its usage
    and every choice's finish reason null or absent. Told by counting byte strings (C only):
    every `"usage"` member must be `"usage":null`, every `"finish_reason"` one
    `"finish_reason":null`. A member name inside a string value cannot match (its quotes are
    escaped there), and a chunk that writes `null` otherwise (`"usage": null`) is parsed,
    which is only slower."""
    return (
        data.count(b'"finish_reason"') == data.count(b'"finish_reason":null')
        and data.count(b'"usage"') == data.count(b'"usage":null')
        and b'"error"' not in data
    )


def _delta_text(obj: dict[str, Any]) -> str:
    """The text a chunk adds: its content and its tool calls' names and arguments."""
    text = ""
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            text += content
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            text += (fn.get("name") or "") + (fn.get("arguments") or "")
    return text


class _Decoder:
    """OpenAI chunks as events. Only the chunks that can carry usage, a finish reason or an
    error are parsed here; the others are forwarded as they came and parsed only if read."""

    __slots__ = ("_sse",)

    def __init__(self) -> None:
        self._sse = SSEDecoder()

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for _, data, raw in self._sse.feed(chunk):
            if data == b"[DONE]":
                events.append(StreamEvent(None, raw))
                continue
            if _plain(data):
                events.append(StreamEvent.unread(data, raw, _delta_text))
                continue
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            if "error" in obj and "choices" not in obj:
                raise UpstreamError(
                    FailureClass.TRANSIENT,
                    str((obj.get("error") or {}).get("message", "stream error")),
                    status=200,
                )
            usage = usage_from(obj.get("usage"))
            choices = obj.get("choices") or []
            finish = None
            for choice in choices:
                finish = choice.get("finish_reason") or finish
            events.append(
                StreamEvent(
                    obj,
                    raw,
                    usage,
                    _delta_text(obj),
                    is_usage_only=not choices and usage is not None,
                    finish_reason=finish,
                )
            )
        return events


class OpenAIChat:
    name = "openai"
    inline_remote_images = False

    def build_request(
        self, call: ChatCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        body = _without_hub_fields(call.body)
        body["model"] = upstream_model
        level = body.pop("thinking_level", None)
        if isinstance(level, str) and "reasoning_effort" not in body:
            effort = _THINKING_TO_EFFORT.get(level.lower())
            if effort:
                body["reasoning_effort"] = effort
        modalities = body.pop("response_modalities", None)
        if modalities and [m.lower() for m in modalities] != ["text"]:
            body["modalities"] = [m.lower() for m in modalities]
        cap = call.max_output
        if cap is not None:
            present = [k for k in ("max_completion_tokens", "max_tokens") if k in body]
            for name in present:
                if isinstance(body[name], int):
                    body[name] = min(body[name], cap)
            if not present:
                body[creds.max_tokens_param] = cap
        if call.stream:
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        headers = {"content-type": "application/json", **creds.headers}
        if creds.api_key:
            headers["authorization"] = f"Bearer {creds.api_key}"
        return UpstreamRequest("/chat/completions", headers, orjson.dumps(body))

    def parse_response(self, body: bytes) -> ChatResult:
        data = reply_object(body, lambda d: "choices" in d)
        return ChatResult(data, usage_from(data.get("usage")), body)

    def stream_decoder(self) -> _Decoder:
        return _Decoder()

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        message = f"HTTP {status}"
        kind = code = ""
        try:
            err = orjson.loads(body).get("error")
            if isinstance(err, dict):
                message = str(err.get("message") or message)
                kind = str(err.get("type") or "")
                code = str(err.get("code") or "")
            elif isinstance(err, str):
                message = err
        except (orjson.JSONDecodeError, AttributeError):
            pass
        retry = _retry_after(headers)
        if status == 429:
            quota = "insufficient_quota" in (kind, code)
            failure = FailureClass.QUOTA if quota else FailureClass.RATE_LIMIT
        elif status == 401:  # invalid_api_key and the other refusals of the key itself
            failure = FailureClass.CREDENTIAL
        elif status == 403:  # this request is not allowed (model, policy): not the key's fault
            failure = FailureClass.REFUSED
        elif status in (408, 504):
            failure = FailureClass.TIMEOUT
        elif 400 <= status < 500 and status != 404:  # 404: the deployment's model is missing
            failure = FailureClass.CALLER
        else:
            failure = FailureClass.TRANSIENT
        return UpstreamError(failure, message, status=status, retry_after=retry, body=body)


class OpenAIEmbeddings:
    """`POST /embeddings` of the OpenAI protocol."""

    name = "openai"

    def build_embed_request(
        self, call: EmbedCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        body = {**call.body, "model": upstream_model}
        headers = {"content-type": "application/json", **creds.headers}
        if creds.api_key:
            headers["authorization"] = f"Bearer {creds.api_key}"
        return UpstreamRequest("/embeddings", headers, orjson.dumps(body))

    def parse_embed_response(self, body: bytes, call: EmbedCall) -> EmbedResult:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UpstreamError(
                FailureClass.TRANSIENT, "the provider returned an unexpected body", status=200
            )
        usage = data.get("usage")
        prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return EmbedResult(data, Usage(prompt, 0) if isinstance(prompt, int) else None)

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return _CHAT.classify_error(status, headers, body)


_CHAT = OpenAIChat()
