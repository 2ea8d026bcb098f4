"""Hub stream events rendered as the Responses API's typed SSE events, numbered in order.

A stream opens with `response.created` and `response.in_progress`; each output item (reasoning
text, the message, each function call) is `response.output_item.added`, its deltas
(`response.reasoning_text.delta`; `response.content_part.added` then
`response.output_text.delta`; `response.function_call_arguments.delta`), their `.done` events
and `response.output_item.done`, one item at a time; it ends with `response.completed` (or
`response.incomplete` when cut by length or a content filter) carrying every item and the
usage, or `response.failed` when the upstream breaks after the first byte. Every event has a
`sequence_number` from 0. An upstream that speaks Responses itself has its events forwarded
(`passthrough`), under the gateway's response id, model and numbering.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from faregate.api.responses_render import (
    INCOMPLETE,
    function_call_item,
    item_ids,
    message_item,
    reasoning_item,
    text_part,
    usage_object,
)
from faregate.billing.types import Usage
from faregate.errors import FaregateError
from faregate.providers.base import StreamEvent

_LIFECYCLE: tuple[str, ...] = ("response.created", "response.in_progress", "response.completed")
_LIFECYCLE += ("response.incomplete", "response.failed", "response.queued")


def sse(payload: dict[str, Any]) -> bytes:
    return (
        b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
    )


class _Item:
    __slots__ = ("call_id", "id", "index", "kind", "name", "text")

    def __init__(self, kind: str, index: int, item_id: str) -> None:
        self.kind, self.index, self.id = kind, index, item_id
        self.text = ""
        self.call_id = self.name = ""


class StreamRenderer:
    """Hub chunks in, typed Responses events out; `final` is the finished `response`."""

    def __init__(
        self,
        response: dict[str, Any],
        request_id: str,
        cost_fields: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        self.response = response  # the in-progress response (no output, no usage)
        self._cost_fields = cost_fields  # the usage's cost fields, from micro-credits
        self._cost: int | None = None
        self.final: dict[str, Any] | None = None
        self._seq = 0
        self._ids = item_ids(request_id)
        self._hex = request_id.removeprefix("req_")
        self._output: list[dict[str, Any]] = []
        self._open: _Item | None = None
        self._tools: dict[int, _Item] = {}
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._usage_dict: Any = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self._seq}
        self._seq += 1
        return sse(payload)

    def start(self) -> list[bytes]:
        snapshot = {**self.response, "status": "in_progress", "output": []}
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def feed(self, event: StreamEvent) -> list[bytes]:
        data = event.data or {}
        if event.usage is not None:
            self._usage, self._usage_dict = event.usage, data.get("usage")
        if event.cost is not None:
            self._cost = event.cost
        out: list[bytes] = []
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out += self._text("reasoning", reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                out += self._text("message", content)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out += self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        return out

    def _text(self, kind: str, text: str) -> list[bytes]:
        out: list[bytes] = []
        item = self._open
        if item is None or item.kind != kind:
            out += self._close()
            item_id = self._ids[0] if kind == "reasoning" else self._ids[1]
            if any(i["id"] == item_id for i in self._output):  # a second block of one kind
                item_id = f"{item_id}_{len(self._output)}"
            item = self._open = _Item(kind, len(self._output), item_id)
            if kind == "reasoning":
                added = reasoning_item(item_id, "", "in_progress")
            else:
                added = message_item(item_id, None, "in_progress")
            out.append(
                self._event("response.output_item.added", output_index=item.index, item=added)
            )
            if kind == "message":
                out.append(
                    self._event(
                        "response.content_part.added",
                        item_id=item.id,
                        output_index=item.index,
                        content_index=0,
                        part=text_part(""),
                    )
                )
        item.text += text
        where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
        if kind == "reasoning":
            out.append(self._event("response.reasoning_text.delta", **where, delta=text))
        else:
            out.append(self._event("response.output_text.delta", **where, delta=text, logprobs=[]))
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = call.get("index", 0)
        position = position if isinstance(position, int) else 0
        fn = call.get("function") or {}
        item = self._tools.get(position)
        if item is None:
            out += self._close()
            index = len(self._output)
            item = _Item("function_call", index, f"{self._ids[2]}_{position}")
            item.call_id = str(call.get("id") or "") or f"call_{self._hex}_{position}"
            item.name = str(fn.get("name") or "")
            self._tools[position] = self._open = item
            added = function_call_item(item.id, item.call_id, item.name, "", "in_progress")
            out.append(self._event("response.output_item.added", output_index=index, item=added))
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            if self._open is not item:  # arguments of an earlier call: not expected, kept
                item.text += arguments
                return out
            item.text += arguments
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.index,
                    delta=arguments,
                )
            )
        return out

    def _close(self) -> list[bytes]:
        item, self._open = self._open, None
        if item is None:
            return []
        status = "incomplete" if self._finish in INCOMPLETE else "completed"
        where = {"item_id": item.id, "output_index": item.index}
        out: list[bytes] = []
        if item.kind == "reasoning":
            done = reasoning_item(item.id, item.text, status)
            out.append(
                self._event(
                    "response.reasoning_text.done", **where, content_index=0, text=item.text
                )
            )
        elif item.kind == "message":
            done = message_item(item.id, item.text, status)
            out.append(
                self._event(
                    "response.output_text.done",
                    **where,
                    content_index=0,
                    text=item.text,
                    logprobs=[],
                )
            )
            out.append(
                self._event(
                    "response.content_part.done",
                    **where,
                    content_index=0,
                    part=text_part(item.text),
                )
            )
        else:
            arguments = item.text or "{}"
            done = function_call_item(item.id, item.call_id, item.name, arguments, status)
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    **where,
                    name=item.name,
                    arguments=arguments,
                )
            )
        self._output.append(done)
        out.append(self._event("response.output_item.done", output_index=item.index, item=done))
        return out

    def end(self) -> list[bytes]:
        """The items still open, then `response.completed` or `response.incomplete`."""
        out = self._close()
        if not self._output:  # a reply with no text at all is still one (empty) message
            index = len(self._output)
            item = _Item("message", index, self._ids[1])
            self._open = item
            added = message_item(item.id, None, "in_progress")
            out.append(self._event("response.output_item.added", output_index=index, item=added))
            part = text_part("")
            where = {"item_id": item.id, "output_index": index, "content_index": 0}
            out.append(self._event("response.content_part.added", **where, part=part))
            out += self._close()
        reason = INCOMPLETE.get(self._finish or "")
        usage = self._with_cost(
            usage_object(self._usage or Usage(0, 0, estimated=True), self._usage_dict)
        )
        self.final = {
            **self.response,
            "status": "incomplete" if reason else "completed",
            "incomplete_details": {"reason": reason} if reason else None,
            "output": self._output,
            "usage": usage,
        }
        kind = "response.incomplete" if reason else "response.completed"
        return [*out, self._event(kind, response=self.final)]

    def fail(self, err: FaregateError) -> list[bytes]:
        """`response.failed`: the stream broke after its first byte."""
        out = self._close()
        self.final = {
            **self.response,
            "status": "failed",
            "output": self._output,
            "error": {"code": "server_error", "message": err.message},
        }
        if self._usage is not None:
            self.final["usage"] = self._with_cost(usage_object(self._usage))
        return [*out, self._event("response.failed", response=self.final)]

    def _with_cost(self, usage: dict[str, Any]) -> dict[str, Any]:
        if self._cost is None or self._cost_fields is None:
            return usage
        return {**usage, **self._cost_fields(self._cost)}

    def passthrough(self, upstream: dict[str, Any], cost: int | None = None) -> bytes:
        """An upstream Responses event under the gateway's id, model and numbering; the
        last lifecycle event's response is kept as `final`, its usage with the cost (`cost`,
        on the event the pipeline settled)."""
        payload = {k: v for k, v in upstream.items() if k != "sequence_number"}
        kind = str(payload.get("type") or "")
        if kind in _LIFECYCLE and isinstance(payload.get("response"), dict):
            own = {
                **payload["response"],
                **{k: self.response[k] for k in ("id", "model", "previous_response_id", "store")},
                "metadata": self.response["metadata"],
            }
            if cost is not None:
                self._cost = cost
            if self._cost is not None and isinstance(own.get("usage"), dict):
                own["usage"] = self._with_cost(own["usage"])
            payload["response"] = own
            if kind != "response.created" and kind != "response.in_progress":
                self.final = own
        return self._event(kind, **{k: v for k, v in payload.items() if k != "type"})
