"""The OpenAI Responses protocol (`POST /responses`) as an upstream chat protocol.

A Responses client's own request (a `NativeCall` of api "responses") is sent as written,
under the upstream's model name, with `store: false` (the gateway keeps the conversation) and
its output cap; any other hub call is translated: messages to input items (system and
developer messages, user text, images and files, assistant text, `tool_calls` as
`function_call` items, tool messages as `function_call_output`), function tools, tool choice,
`response_format` as `text.format`, `reasoning_effort` (or a thinking level or budget, as on
OpenAI chat) as `reasoning.effort`. Replies and
events are read back into the hub shape (text, reasoning text, function calls, finish reason,
usage); each decoded event keeps the upstream's own event for Responses clients.
"""

from __future__ import annotations

from typing import Any

import orjson

from faregate.billing.types import Usage
from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import (
    ChatCall,
    ChatResult,
    Credentials,
    StreamEvent,
    UpstreamRequest,
    reply_object,
)
from faregate.providers.native import NativeCall, NativeEvent
from faregate.providers.openai import OpenAIChat
from faregate.providers.sse import SSEDecoder

_PASSED = ("temperature", "top_p", "parallel_tool_calls", "user", "metadata")


def usage_of(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt, output = data.get("input_tokens"), data.get("output_tokens")
    if not isinstance(prompt, int) or not isinstance(output, int):
        return None
    idet = data.get("input_tokens_details") or {}
    odet = data.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        cached_tokens=int(idet.get("cached_tokens") or 0) if isinstance(idet, dict) else 0,
        reasoning_tokens=int(odet.get("reasoning_tokens") or 0) if isinstance(odet, dict) else 0,
    )


def _hub_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _content(content: Any, role: str) -> Any:
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    if role != "user":
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "input_text", "text": str(part.get("text") or "")})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url") if isinstance(image, dict) else image
            out: dict[str, Any] = {"type": "input_image", "image_url": url}
            if isinstance(image, dict) and image.get("detail"):
                out["detail"] = image["detail"]
            parts.append(out)
        elif kind == "file":
            file = part.get("file") or {}
            parts.append(
                {
                    "type": "input_file",
                    "file_data": file.get("file_data"),
                    "filename": file.get("filename") or "file",
                }
            )
    return parts


def to_input(messages: list[Any]) -> list[dict[str, Any]]:
    """Hub chat messages as Responses input items."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "tool":
            output = _content(message.get("content"), "tool")
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": str(message.get("tool_call_id") or ""),
                    "output": output,
                }
            )
            continue
        role = "system" if role == "developer" else role
        content = _content(message.get("content"), str(role))
        if content:
            items.append({"type": "message", "role": role, "content": content})
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            items.append(
                {
                    "type": "function_call",
                    "call_id": str(call.get("id") or ""),
                    "name": str(fn.get("name") or ""),
                    "arguments": str(fn.get("arguments") or "{}"),
                }
            )
    return items


def _translate(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"input": to_input(body.get("messages") or [])}
    for name in _PASSED:
        if body.get(name) is not None:
            out[name] = body[name]
    tools = [
        {"type": "function", **(t.get("function") or {})}
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("type") == "function"
    ]
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = {
            "type": "function",
            "name": (choice.get("function") or {}).get("name"),
        }
    elif choice is not None:
        out["tool_choice"] = choice
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["text"] = {"format": {"type": "json_schema", **(fmt.get("json_schema") or {})}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["text"] = {"format": {"type": "json_object"}}
    effort = _effort(body)
    if effort is not None:
        out["reasoning"] = {"effort": effort}
    return out


def _effort(body: dict[str, Any]) -> str | None:
    """The reasoning effort: as asked, else from a thinking level, else from a thinking
    budget (up to 2048 tokens low, up to 8192 medium, above high), as on OpenAI chat."""
    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        return effort
    level = body.get("thinking_level")
    if isinstance(level, str) and level.lower() in ("minimal", "low", "medium", "high"):
        return level.lower()
    budget = body.get("thinking_budget")
    if isinstance(budget, int) and budget > 0:
        return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
    return None


def to_hub(data: dict[str, Any]) -> dict[str, Any]:
    """A Responses object as a hub chat completion."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in data.get("output") or ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    text.append(str(part.get("text") or ""))
        elif kind == "reasoning":
            for part in [*(item.get("content") or ()), *(item.get("summary") or ())]:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    reasoning.append(part["text"])
        elif kind == "function_call":
            calls.append(
                {
                    "id": str(item.get("call_id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(item.get("name") or ""),
                        "arguments": str(item.get("arguments") or ""),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    usage = usage_of(data.get("usage"))
    hub: dict[str, Any] = {
        "id": str(data.get("id") or ""),
        "object": "chat.completion",
        "created": data.get("created_at") or 0,
        "model": str(data.get("model") or ""),
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(data, calls)}],
    }
    if usage is not None:
        hub["usage"] = _hub_usage(usage)
    return hub


def _finish(data: dict[str, Any], calls: list[Any] | bool) -> str:
    details = data.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if data.get("status") == "incomplete":
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if calls else "stop"


class _Decoder:
    """Responses events in, hub chunks out, each keeping its upstream event."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._calls: dict[str, int] = {}  # function-call item id -> hub tool-call index
        self._id = ""
        self._model = ""

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self._model,
            "choices": choices,
        }

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for _, data, _raw in self._sse.feed(chunk):
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events += self._event(event)
        return events

    def _event(self, event: dict[str, Any]) -> list[StreamEvent]:
        kind = event.get("type")
        found = event.get("response")
        response: dict[str, Any] = found if isinstance(found, dict) else {}
        if kind in ("response.created", "response.in_progress"):
            self._id, self._model = str(response.get("id") or ""), str(response.get("model") or "")
        if kind == "error" or kind == "response.failed":
            error = event.get("error") or response.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else None
            raise UpstreamError(FailureClass.TRANSIENT, str(message or "stream error"), status=200)
        if kind == "response.output_text.delta":
            text = str(event.get("delta") or "")
            return [NativeEvent(self._chunk({"content": text}), text=text, native=event)]
        if kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
            text = str(event.get("delta") or "")
            return [NativeEvent(self._chunk({"reasoning_content": text}), native=event)]
        got = event.get("item")
        item: dict[str, Any] = got if isinstance(got, dict) else {}
        if kind == "response.output_item.added" and item.get("type") == "function_call":
            index = self._calls.setdefault(str(item.get("id") or ""), len(self._calls))
            name = str(item.get("name") or "")
            call = {
                "index": index,
                "id": str(item.get("call_id") or ""),
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            return [NativeEvent(self._chunk({"tool_calls": [call]}), text=name, native=event)]
        if kind == "response.function_call_arguments.delta":
            index = self._calls.get(str(event.get("item_id") or ""), 0)
            text = str(event.get("delta") or "")
            call = {"index": index, "function": {"arguments": text}}
            return [NativeEvent(self._chunk({"tool_calls": [call]}), text=text, native=event)]
        if kind in ("response.completed", "response.incomplete"):
            usage = usage_of(response.get("usage"))
            finish = _finish(response, bool(self._calls))
            data = self._chunk({}, finish)
            if usage is not None:
                data["usage"] = _hub_usage(usage)
            done = NativeEvent(data, usage=usage, finish_reason=finish, native=event)
            return [done, NativeEvent(None)]
        return [NativeEvent(self._chunk(None), native=event)]


class OpenAIResponses:
    name = "openai-responses"
    inline_remote_images = False

    def build_request(
        self, call: ChatCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        if isinstance(call, NativeCall) and call.api == "responses":
            body = dict(call.native)
        else:
            body = _translate(call.body)
        body["model"] = upstream_model
        body["store"] = False
        if call.max_output is not None:
            cap = body.get("max_output_tokens")
            body["max_output_tokens"] = (
                min(cap, call.max_output) if isinstance(cap, int) else call.max_output
            )
        if call.stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        headers = {"content-type": "application/json", **creds.headers}
        if creds.api_key:
            headers["authorization"] = f"Bearer {creds.api_key}"
        return UpstreamRequest("/responses", headers, orjson.dumps(body))

    def parse_response(self, body: bytes) -> ChatResult:
        data = reply_object(body, lambda d: d.get("object") == "response")
        return ChatResult(to_hub(data), usage_of(data.get("usage")), body)

    def stream_decoder(self) -> _Decoder:
        return _Decoder()

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return _CHAT.classify_error(status, headers, body)


_CHAT = OpenAIChat()
