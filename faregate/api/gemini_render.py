"""Internal chat replies and chunks rendered as Gemini GenerateContentResponses."""

from __future__ import annotations

from typing import Any

import orjson

from faregate.billing.types import Usage
from faregate.providers.base import StreamEvent

FINISH = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


def usage_metadata(usage: Usage) -> dict[str, Any]:
    """usageMetadata from hub usage: candidates exclude the thoughts, prompt includes cache."""
    thoughts = min(usage.reasoning_tokens, usage.completion_tokens)
    meta: dict[str, Any] = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens - thoughts,
        "totalTokenCount": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def _image_part(image: Any) -> dict[str, Any] | None:
    url = image.get("image_url") if isinstance(image, dict) else None
    url = url.get("url") if isinstance(url, dict) else url
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    head, _, data = url.partition(",")
    mime = head[5:].removesuffix(";base64") or "application/octet-stream"
    return {"inlineData": {"mimeType": mime, "data": data}}


def call_part(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as a functionCall part, with its thought signature."""
    fn = call.get("function") or {}
    raw = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        args = {"arguments": raw}
    function: dict[str, Any] = {"name": fn.get("name") or "", "args": args}
    if call.get("id"):
        function["id"] = call["id"]
    part: dict[str, Any] = {"functionCall": function}
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    return part


def message_parts(message: dict[str, Any], thoughts: bool) -> list[dict[str, Any]]:
    """The parts of a hub message (or delta): thoughts, text, images, function calls."""
    parts: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if thoughts and isinstance(reasoning, str) and reasoning:
        parts.append({"text": reasoning, "thought": True})
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    if isinstance(content, str) and content:
        parts.append({"text": content})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"text": refusal})
    for image in message.get("images") or ():
        if (part := _image_part(image)) is not None:
            parts.append(part)
    return parts


def render_reply(reply: dict[str, Any], usage: Usage, thoughts: bool) -> dict[str, Any]:
    """A whole hub completion as a GenerateContentResponse."""
    candidates = []
    for position, choice in enumerate(reply.get("choices") or ()):
        message = choice.get("message") or {}
        parts = message_parts(message, thoughts)
        parts += [call_part(c) for c in message.get("tool_calls") or () if isinstance(c, dict)]
        index = choice.get("index")
        candidates.append(
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": FINISH.get(str(choice.get("finish_reason")), "STOP"),
                "index": index if isinstance(index, int) else position,
            }
        )
    return {
        "candidates": candidates,
        "usageMetadata": usage_metadata(usage),
        "modelVersion": str(reply.get("model") or ""),
        "responseId": str(reply.get("id") or ""),
    }


class _Call:
    __slots__ = ("arguments", "extra", "id", "name")

    def __init__(self) -> None:
        self.id = self.name = self.arguments = ""
        self.extra: Any = None


class Chunker:
    """Hub stream events -> GenerateContentResponse chunks. Tool calls are sent whole once
    their choice finishes; finishReason waits for the usage so the last chunk carries both,
    as Gemini's does."""

    def __init__(self, thoughts: bool) -> None:
        self.thoughts = thoughts
        self.model = ""
        self.id = ""
        self.calls: dict[int, dict[int, _Call]] = {}
        self.finished: dict[int, str] = {}

    def _frame(self, candidates: list[dict[str, Any]]) -> dict[str, Any]:
        return {"candidates": candidates, "modelVersion": self.model, "responseId": self.id}

    def feed(self, event: StreamEvent) -> list[dict[str, Any]]:
        """The Gemini chunks for one hub event (the end marker flushes what is pending)."""
        data = event.data
        if data is None:
            return self.flush(None)
        self.model = self.model or str(data.get("model") or "")
        self.id = self.id or str(data.get("id") or "")
        candidates = []
        for choice in data.get("choices") or ():
            index = int(choice.get("index") or 0)
            delta = choice.get("delta") or {}
            parts = message_parts(delta, self.thoughts)
            self._buffer(index, delta.get("tool_calls"))
            if parts:
                candidates.append({"content": {"parts": parts, "role": "model"}, "index": index})
            if choice.get("finish_reason"):
                self.finished[index] = FINISH.get(str(choice["finish_reason"]), "STOP")
        out = [self._frame(candidates)] if candidates else []
        if event.usage is not None:
            out += self.flush(event.usage)
        return out

    def _buffer(self, index: int, deltas: Any) -> None:
        for delta in deltas if isinstance(deltas, list) else ():
            slot = int(delta.get("index") or 0)
            call = self.calls.setdefault(index, {}).setdefault(slot, _Call())
            fn = delta.get("function") or {}
            call.id = call.id or str(delta.get("id") or "")
            call.name += str(fn.get("name") or "")
            call.arguments += str(fn.get("arguments") or "")
            call.extra = delta.get("extra_content") or call.extra

    def flush(self, usage: Usage | None) -> list[dict[str, Any]]:
        """The final chunk: finished candidates with their calls, and the usage."""
        if not self.finished and usage is None:
            return []
        candidates = []
        for index, reason in sorted(self.finished.items()):
            calls = self.calls.pop(index, {})
            candidate: dict[str, Any] = {"finishReason": reason, "index": index}
            parts = [
                call_part(
                    {
                        "id": c.id,
                        "function": {"name": c.name, "arguments": c.arguments},
                        "extra_content": c.extra,
                    }
                )
                for _, c in sorted(calls.items())
            ]
            if parts:
                candidate["content"] = {"parts": parts, "role": "model"}
            candidates.append(candidate)
        self.finished.clear()
        frame = self._frame(candidates)
        if usage is not None:
            frame["usageMetadata"] = usage_metadata(usage)
        return [frame]
