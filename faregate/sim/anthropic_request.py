"""Validation of Anthropic Messages requests for the simulator, with Anthropic's 400 messages.

Besides types and ranges it checks what the real API enforces across fields: unknown fields
are refused, every `tool_use` is answered by a `tool_result` in the next message (and every
`tool_result` answers one), thinking needs 1024 <= budget_tokens < max_tokens and forbids
forced tool use, a temperature other than 1 and top_k, thinking blocks sent back must carry
the signature the simulator gave them, and with thinking on, an assistant turn whose tool
calls are being answered must start with its thinking block.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from faregate.tokens import count_messages

MESSAGE_FIELDS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "metadata", "stop_sequences", "stream",
        "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
    }
)  # fmt: skip
COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MIN_BUDGET = 1024
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_USER_BLOCKS = frozenset({"text", "image", "document", "tool_result"})
_ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})


class Invalid(Exception):
    """A request Anthropic would refuse with 400 invalid_request_error."""


@dataclass(slots=True)
class MessagesRequest:
    model: str
    max_tokens: int
    messages: list[dict[str, Any]]  # content always a list of blocks
    system: str
    tools: list[dict[str, Any]]
    tool_choice: dict[str, Any]
    stop_sequences: list[str]
    stream: bool
    thinking_budget: int | None
    input_tokens: int


def sign(thinking: str) -> str:
    """The simulator's signature of a thinking text (checked when it is sent back)."""
    digest = hashlib.blake2b(("sim-thinking|" + thinking).encode(), digest_size=48).digest()
    return base64.b64encode(digest).decode()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_messages_request(body: dict[str, Any], *, counting: bool = False) -> MessagesRequest:
    """Validate a `/v1/messages` body (or a `count_tokens` one); raise `Invalid`."""
    allowed = COUNT_FIELDS if counting else MESSAGE_FIELDS
    for name in body:
        if name not in allowed:
            raise Invalid(f"{name}: Extra inputs are not permitted")
    model = body.get("model")
    if model is None:
        raise Invalid("model: Field required")
    if not isinstance(model, str) or not model:
        raise Invalid("model: Input should be a valid string")
    max_tokens = 0
    if not counting:
        max_tokens = _max_tokens(body.get("max_tokens"))
    messages = _messages(body.get("messages"))
    system = _system(body.get("system"))
    for name, high in (("temperature", 1.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is not None and (not _is_number(value) or not 0 <= value <= high):
            raise Invalid(f"{name}: Input should be a number between 0 and {high:g}")
    top_k = body.get("top_k")
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        raise Invalid("top_k: Input should be a non-negative integer")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise Invalid("stop_sequences: Input should be a valid list of strings")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise Invalid("stream: Input should be a valid boolean")
    _metadata(body.get("metadata"))
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"), tools)
    budget = _thinking(body, max_tokens, choice, counting)
    if budget is not None:
        _thinking_turn(messages)
    flat = [{"role": "system", "content": system}] if system else []
    flat += [_flatten(m) for m in messages]
    return MessagesRequest(
        model=model,
        max_tokens=max_tokens,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=choice,
        stop_sequences=list(stops),
        stream=stream,
        thinking_budget=budget,
        input_tokens=count_messages(flat, body.get("tools")),
    )


def _max_tokens(value: Any) -> int:
    if value is None:
        raise Invalid("max_tokens: Field required")
    if not _is_int(value):
        raise Invalid("max_tokens: Input should be a valid integer")
    if value < 1:
        raise Invalid("max_tokens: Input should be greater than or equal to 1")
    return int(value)


def _system(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for j, block in enumerate(value):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise Invalid(f"system.{j}.type: Input should be 'text'")
            texts.append(_text(block, f"system.{j}"))
        return "\n".join(texts)
    raise Invalid("system: Input should be a valid string or a list of text blocks")


def _metadata(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise Invalid("metadata: Input should be a valid dictionary")
    for key in value:
        if key != "user_id":
            raise Invalid(f"metadata.{key}: Extra inputs are not permitted")
    if value.get("user_id") is not None and not isinstance(value["user_id"], str):
        raise Invalid("metadata.user_id: Input should be a valid string")


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise Invalid(f"{where}.text: Input should be a valid string")
    if not text:
        raise Invalid(f"{where}: text content blocks must be non-empty")
    return text


def _messages(value: Any) -> list[dict[str, Any]]:
    if value is None:
        raise Invalid("messages: Field required")
    if not isinstance(value, list):
        raise Invalid("messages: Input should be a valid list")
    if not value:
        raise Invalid("messages: at least one message is required")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise Invalid(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            if not content and i != len(value) - 1:
                raise Invalid(f"messages.{i}: all messages must have non-empty content")
            content = [{"type": "text", "text": content}] if content else []
        if not isinstance(content, list):
            raise Invalid(f"messages.{i}.content: Input should be a valid list")
        allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
        for j, block in enumerate(content):
            _block(block, f"messages.{i}.content.{j}", allowed)
        out.append({"role": role, "content": content})
    _tool_pairs(out)
    return out


def _block(block: Any, where: str, allowed: frozenset[str]) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(block, dict) or kind not in allowed:
        raise Invalid(
            f"{where}: Input tag {kind!r} found using 'type' does not match any of the expected "
            f"tags: {', '.join(sorted(allowed))}"
        )
    if kind == "text":
        _text(block, where)
    elif kind in ("image", "document"):
        _source(block.get("source"), f"{where}.source", kind)
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise Invalid(f"{where}: tool_use blocks need a string id and name")
        if not isinstance(block.get("input"), dict):
            raise Invalid(f"{where}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise Invalid(f"{where}.tool_use_id: Field required")
        inner = block.get("content")
        if isinstance(inner, list):
            for k, part in enumerate(inner):
                _block(part, f"{where}.content.{k}", frozenset({"text", "image", "document"}))
        elif inner is not None and not isinstance(inner, str):
            raise Invalid(f"{where}.content: Input should be a valid string or list")
    elif kind == "thinking":
        thinking, signature = block.get("thinking"), block.get("signature")
        if not isinstance(thinking, str) or not isinstance(signature, str):
            raise Invalid(f"{where}: thinking blocks need string thinking and signature")
        if signature != sign(thinking):
            raise Invalid(f"{where}: Invalid `signature` in `thinking` block")
    elif kind == "redacted_thinking" and not isinstance(block.get("data"), str):
        raise Invalid(f"{where}.data: Field required")


def _source(source: Any, where: str, kind: str) -> None:
    if not isinstance(source, dict):
        raise Invalid(f"{where}: Field required")
    if source.get("type") == "url":
        if not isinstance(source.get("url"), str):
            raise Invalid(f"{where}.url: Field required")
        return
    if source.get("type") != "base64" or not isinstance(source.get("data"), str):
        raise Invalid(f"{where}: expected a base64 or url source")
    media = source.get("media_type")
    allowed = IMAGE_TYPES if kind == "image" else ("application/pdf",)
    if media not in allowed:
        raise Invalid(f"{where}.media_type: Input should be {' or '.join(allowed)}")


def _tool_pairs(messages: list[dict[str, Any]]) -> None:
    previous: set[str] = set()
    for i, message in enumerate(messages):
        ids = [b["tool_use_id"] for b in message["content"] if b["type"] == "tool_result"]
        if message["role"] == "user":
            for j, block in enumerate(message["content"]):
                if block["type"] == "tool_result" and block["tool_use_id"] not in previous:
                    raise Invalid(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block['tool_use_id']}. Each `tool_result` "
                        "block must have a corresponding `tool_use` block in the previous message."
                    )
        missing = sorted(previous - set(ids))
        if missing:
            raise Invalid(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        uses = {b["id"] for b in message["content"] if b["type"] == "tool_use"}
        previous = uses if message["role"] == "assistant" else set()


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("tools: Input should be a valid list")
    names: set[str] = set()
    for j, tool in enumerate(value):
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
            raise Invalid(f"tools.{j}: only custom tools (name, input_schema) are simulated")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise Invalid(f"tools.{j}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Invalid(f"tools.{j}.input_schema.type: Input should be 'object'")
        if name in names:
            raise Invalid("tools: Tool names must be unique.")
        names.add(name)
    return list(value)


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> dict[str, Any]:
    if value is None:
        return {"type": "auto"}
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(value, dict) or kind not in ("auto", "any", "tool", "none"):
        raise Invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind in ("any", "tool") and not tools:
        raise Invalid("tool_choice: tool_choice may only be specified while providing tools.")
    if kind == "tool" and value.get("name") not in {t["name"] for t in tools}:
        raise Invalid(f"tool_choice.name: Tool '{value.get('name')}' not found in tools")
    parallel = value.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise Invalid("tool_choice.disable_parallel_tool_use: Input should be a valid boolean")
    return value


def _thinking(
    body: dict[str, Any], max_tokens: int, choice: dict[str, Any], counting: bool
) -> int | None:
    value = body.get("thinking")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "disabled":
        return None
    if kind != "enabled" or not isinstance(value, dict):
        raise Invalid("thinking.type: Input should be 'enabled' or 'disabled'")
    budget = value.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise Invalid("thinking.enabled.budget_tokens: Field required")
    if budget < MIN_BUDGET:
        raise Invalid(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}"
        )
    if not counting and budget >= max_tokens:
        raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    if choice["type"] in ("any", "tool"):
        raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")
    if body.get("temperature") not in (None, 1, 1.0):
        raise Invalid("`temperature` may only be set to 1 when thinking is enabled.")
    if body.get("top_k") is not None:
        raise Invalid("`top_k` must be unset when thinking is enabled.")
    return budget


def _thinking_turn(messages: list[dict[str, Any]]) -> None:
    """With thinking on, the assistant turn whose tool calls the last message answers must
    open with a thinking block."""
    if len(messages) < 2 or messages[-1]["role"] != "user":
        return
    if not any(b["type"] == "tool_result" for b in messages[-1]["content"]):
        return
    turn = messages[-2]
    if turn["role"] != "assistant":
        return
    first = turn["content"][0]["type"] if turn["content"] else None
    if first not in ("thinking", "redacted_thinking"):
        raise Invalid(
            f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or "
            f"`redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final "
            "`assistant` message must start with a thinking block."
        )


def _flatten(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped message with the same countable text (see `anthropic_reply`)."""
    parts: list[dict[str, Any]] = []
    for block in message["content"]:
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind in ("image", "document"):
            parts.append({"type": "image"})
        elif kind == "tool_use":
            parts.append({"type": "text", "text": block["name"]})
            parts.append({"type": "text", "text": orjson.dumps(block["input"]).decode()})
        elif kind == "thinking":
            parts.append({"type": "text", "text": block["thinking"]})
        elif kind == "tool_result":
            inner = block.get("content")
            if isinstance(inner, str):
                parts.append({"type": "text", "text": inner})
            elif isinstance(inner, list):
                parts.extend(_flatten({"content": inner})["content"])
    return {"role": message.get("role", "user"), "content": parts}
