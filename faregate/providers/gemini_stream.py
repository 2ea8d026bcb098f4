"""Gemini replies in the internal chat shape: whole GenerateContentResponses and SSE streams."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import ChatResult, StreamEvent
from faregate.providers.openai import usage_from
from faregate.providers.sse import SSEDecoder

_FILTERED = (
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "MODEL_ARMOR",
)
FINISH_REASONS: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(_FILTERED, "content_filter"),
}
"""Gemini finishReason -> OpenAI finish_reason; anything else ends as "stop"."""


def finish_reason(reason: Any, has_calls: bool) -> str | None:
    """The OpenAI finish reason of a Gemini one (None while the candidate is still open)."""
    if not isinstance(reason, str) or not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    mapped = FINISH_REASONS.get(reason, "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def _count(meta: dict[str, Any], name: str) -> int:
    value = meta.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_dict(meta: Any) -> dict[str, Any] | None:
    """OpenAI usage from a Gemini usageMetadata: prompt includes cached tokens, completion
    includes the thoughts."""
    if not isinstance(meta, dict) or not isinstance(meta.get("promptTokenCount"), int):
        return None
    prompt = _count(meta, "promptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = _count(meta, "candidatesTokenCount") + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _count(meta, "cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class _Parts:
    """What one candidate's parts say, sorted into the OpenAI message fields."""

    __slots__ = ("calls", "images", "reasoning", "text")

    def __init__(self, parts: Any, first_call: int = 0) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("functionCall"), dict):
                self.calls.append(_tool_call(part, first_call + len(self.calls)))
            elif isinstance(part.get("inlineData"), dict):
                blob = part["inlineData"]
                mime = str(blob.get("mimeType") or "application/octet-stream")
                if mime.startswith("image/"):
                    url = f"data:{mime};base64,{blob.get('data') or ''}"
                    self.images.append({"type": "image_url", "image_url": {"url": url}})
            elif isinstance(part.get("text"), str):
                (self.reasoning if part.get("thought") else self.text).append(part["text"])

    def estimate_text(self) -> str:
        calls = (c["function"]["name"] + c["function"]["arguments"] for c in self.calls)
        return "".join([*self.reasoning, *self.text, *calls])


def _tool_call(part: dict[str, Any], index: int) -> dict[str, Any]:
    fn = part["functionCall"]
    call_id = fn.get("id")
    args = fn.get("args")
    call: dict[str, Any] = {
        "index": index,
        "id": call_id if isinstance(call_id, str) and call_id else new_call_id(),
        "type": "function",
        "function": {
            "name": str(fn.get("name") or ""),
            "arguments": orjson.dumps(args if args is not None else {}).decode(),
        },
    }
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def parse_generate_response(body: bytes) -> ChatResult:
    """A GenerateContentResponse as an OpenAI chat completion."""
    data = _loads(body)
    if not isinstance(data, dict) or not (
        "candidates" in data or "promptFeedback" in data or "usageMetadata" in data
    ):
        raise UpstreamError(
            FailureClass.TRANSIENT, "the provider returned an unexpected body", status=200
        )
    choices: list[dict[str, Any]] = []
    for position, cand in enumerate(data.get("candidates") or ()):
        if not isinstance(cand, dict):
            continue
        content = cand.get("content")
        parts = _Parts(content.get("parts") if isinstance(content, dict) else None)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(parts.text) if parts.text else None,
            "refusal": None,
        }
        if parts.reasoning:
            message["reasoning_content"] = "".join(parts.reasoning)
        if parts.calls:
            message["tool_calls"] = [
                {k: v for k, v in c.items() if k != "index"} for c in parts.calls
            ]
        if parts.images:
            message["images"] = parts.images
        index = cand.get("index")
        choices.append(
            {
                "index": index if isinstance(index, int) else position,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(cand.get("finishReason"), bool(parts.calls))
                or "stop",
            }
        )
    if not choices:  # the prompt itself was blocked
        message = {"role": "assistant", "content": None}
        choices.append(
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"}
        )
    usage = usage_dict(data.get("usageMetadata"))
    response_id = data.get("responseId")
    reply: dict[str, Any] = {
        "id": response_id if isinstance(response_id, str) and response_id else _chunk_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(data.get("modelVersion") or ""),
        "choices": choices,
    }
    if usage is not None:
        reply["usage"] = usage
    return ChatResult(reply, usage_from(usage))


def _chunk_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _details(details: Any, kind: str) -> list[dict[str, Any]]:
    items = details if isinstance(details, list) else []
    return [d for d in items if isinstance(d, dict) and str(d.get("@type", "")).endswith(kind)]


KEY_REASONS = frozenset(
    {
        "API_KEY_INVALID",
        "API_KEY_EXPIRED",
        "API_KEY_SERVICE_BLOCKED",
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",
        "API_KEY_ANDROID_APP_BLOCKED",
        "API_KEY_IOS_APP_BLOCKED",
        "SERVICE_DISABLED",
        "CONSUMER_SUSPENDED",
    }
)
"""`ErrorInfo.reason`s that say the API key (or its project) cannot be used at all."""

_KEY_MARKERS = ("api key not valid", "api key expired", "unregistered callers")


def failure_of(status: int, status_name: str, message: str, details: Any) -> FailureClass:
    """Classify a Google API error by HTTP status, its status name and details."""
    lowered = message.lower()
    if status == 429 or status_name == "RESOURCE_EXHAUSTED":
        quota_ids = " ".join(
            str(v.get("quotaId", "")) + " " + str(v.get("quotaMetric", ""))
            for d in _details(details, "QuotaFailure")
            for v in d.get("violations") or ()
            if isinstance(v, dict)
        ).lower()
        exhausted = "perday" in quota_ids or any(
            marker in lowered for marker in ("depleted", "limit: 0", "per day")
        )
        return FailureClass.QUOTA if exhausted else FailureClass.RATE_LIMIT
    reasons = {str(d.get("reason", "")) for d in _details(details, "ErrorInfo")}
    if reasons & KEY_REASONS or any(marker in lowered for marker in _KEY_MARKERS):
        return FailureClass.CREDENTIAL  # the key itself (Google answers a bad key with a 400)
    if status == 401 or status_name == "UNAUTHENTICATED":
        return FailureClass.CREDENTIAL
    if status == 403 or status_name == "PERMISSION_DENIED":
        return FailureClass.REFUSED  # e.g. a model this project may not use
    if status in (400, 413, 422):
        return FailureClass.CALLER
    if status in (408, 504) or status_name == "DEADLINE_EXCEEDED":
        return FailureClass.TIMEOUT
    return FailureClass.TRANSIENT


def stream_error(obj: dict[str, Any]) -> UpstreamError:
    """The failure an `{"error": {...}}` event in a stream stands for."""
    err = obj.get("error")
    err = err if isinstance(err, dict) else {}
    code = err.get("code")
    status = code if isinstance(code, int) else 500
    message = str(err.get("message") or "stream error")
    failure = failure_of(status, str(err.get("status") or ""), message, err.get("details"))
    return UpstreamError(failure, message, status=200)


class GeminiStreamDecoder:
    """SSE of GenerateContentResponses -> OpenAI chunks. Gemini sends no [DONE]: the stream is
    complete once every candidate carries a finishReason and a chunk carries usageMetadata;
    the finish chunks, a usage-only chunk and the end marker are emitted right then."""

    __slots__ = (
        "_calls",
        "_cr",
        "_created",
        "_done",
        "_finished",
        "_id",
        "_model",
        "_sse",
        "_started",
    )

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._cr = False
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}
        self._done = False

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._done:
            return []
        # A CRLF split across two reads must reach the SSE decoder whole.
        if self._cr:
            chunk = b"\r" + chunk
        self._cr = chunk.endswith(b"\r")
        if self._cr:
            chunk = chunk[:-1]
        events: list[StreamEvent] = []
        for _, data, _raw in self._sse.feed(chunk):
            obj = _loads(data)
            if isinstance(obj, list) and len(obj) == 1:
                obj = obj[0]
            if not isinstance(obj, dict):
                continue
            if "error" in obj and "candidates" not in obj:
                raise stream_error(obj)
            events.extend(self._response(obj))
            if events and events[-1].data is None:
                break
        return events

    def _chunk(
        self, index: int, delta: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        entry = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [entry],
        }

    def _start(self, index: int) -> StreamEvent | None:
        if index in self._started:
            return None
        self._started.add(index)
        return StreamEvent(self._chunk(index, {"role": "assistant", "content": ""}))

    def _response(self, obj: dict[str, Any]) -> list[StreamEvent]:
        if not self._id:
            rid = obj.get("responseId")
            self._id = rid if isinstance(rid, str) and rid else _chunk_id()
        if not self._model and isinstance(obj.get("modelVersion"), str):
            self._model = obj["modelVersion"]
        events: list[StreamEvent] = []
        candidates = [c for c in obj.get("candidates") or () if isinstance(c, dict)]
        feedback = obj.get("promptFeedback")
        if not candidates and isinstance(feedback, dict) and feedback.get("blockReason"):
            candidates = [{"index": 0, "finishReason": "SAFETY"}]
        for position, cand in enumerate(candidates):
            index = cand.get("index")
            events.extend(self._candidate(index if isinstance(index, int) else position, cand))
        usage = usage_dict(obj.get("usageMetadata"))
        if usage is not None and self._finished and self._finished >= self._started:
            self._done = True
            final = {**self._chunk(0, {}), "choices": [], "usage": usage}
            events.append(StreamEvent(final, usage=usage_from(usage), is_usage_only=True))
            events.append(StreamEvent(None))
        return events

    def _candidate(self, index: int, cand: dict[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if index in self._finished:
            return events
        if (started := self._start(index)) is not None:
            events.append(started)
        content = cand.get("content")
        first_call = self._calls.get(index, 0)
        parts = _Parts(content.get("parts") if isinstance(content, dict) else None, first_call)
        if reasoning := "".join(parts.reasoning):
            delta = {"reasoning_content": reasoning}
            events.append(StreamEvent(self._chunk(index, delta), text=reasoning))
        if text := "".join(parts.text):
            events.append(StreamEvent(self._chunk(index, {"content": text}), text=text))
        if parts.images:
            events.append(StreamEvent(self._chunk(index, {"images": parts.images})))
        if parts.calls:
            self._calls[index] = first_call + len(parts.calls)
            events.append(
                StreamEvent(
                    self._chunk(index, {"tool_calls": parts.calls}), text=parts.estimate_text()
                )
            )
        finish = finish_reason(cand.get("finishReason"), self._calls.get(index, 0) > 0)
        if finish is not None:
            self._finished.add(index)
            events.append(StreamEvent(self._chunk(index, {}, finish), finish_reason=finish))
        return events
