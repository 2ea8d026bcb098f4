"""A Responses API request (`POST /v1/responses`), validated and translated into the hub call.

`instructions` becomes a leading system message; input items become chat messages in order:
a `message` (roles user, system, developer as system, assistant; `input_text` / `output_text`
parts as text, `input_image` as an `image_url` part, `input_file` with `file_data` as a `file`
part), consecutive `function_call` items one assistant message with `tool_calls`, each
`function_call_output` a tool message (its `call_id` must name an earlier call), `reasoning`
items dropped. Items of a previous response (`previous_response_id`) come first. Function
tools become chat tools; `text.format` becomes `response_format`, `reasoning.effort`
`reasoning_effort`, `max_output_tokens` the output cap. Every refusal is a 400 naming the
field the way OpenAI does (`input[2].type`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faregate.errors import BadRequest
from faregate.providers.native import NativeCall

_SENT = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
        "reasoning", "max_output_tokens", "temperature", "top_p", "metadata", "store",
        "previous_response_id", "stream", "user",
    }
)  # fmt: skip
_IGNORED = frozenset(
    {
        "include", "truncation", "service_tier", "safety_identifier", "prompt_cache_key",
        "prompt_cache_retention", "top_logprobs", "stream_options", "max_tool_calls",
        "background",
    }
)  # fmt: skip
"""Accepted and not acted on (`background` only when false)."""
_REFUSED = frozenset({"conversation", "prompt"})
_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")


def _bad(param: str, message: str, code: str = "invalid_value") -> BadRequest:
    return BadRequest(message, code=code, param=param)


def _type_error(param: str, expected: str) -> BadRequest:
    return _bad(param, f"Invalid type for '{param}': expected {expected}.", "invalid_type")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(slots=True)
class ResponsesRequest:
    """The hub call, this request's input items (with ids), and what the response echoes."""

    call: NativeCall
    items: list[dict[str, Any]]
    echo: dict[str, Any]
    store: bool
    previous_response_id: str | None


def check_top_level(body: dict[str, Any]) -> None:
    """Unknown and unsupported top-level fields, the model and the input."""
    for name in body:
        if name in _REFUSED or (name == "background" and body[name]):
            raise _bad(name, f"'{name}' is not supported by this gateway.", "unsupported_parameter")
        if name not in _SENT and name not in _IGNORED:
            raise _bad(name, f"Unknown parameter: '{name}'.", "unknown_parameter")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _bad("model", "Missing required parameter: 'model'.", "missing_required_parameter")
    data = body.get("input")
    if data is None:
        raise _bad("input", "Missing required parameter: 'input'.", "missing_required_parameter")
    if not isinstance(data, str | list):
        raise _type_error("input", "a string or an array of input items")
    prev = body.get("previous_response_id")
    if prev is not None and not isinstance(prev, str):
        raise _type_error("previous_response_id", "a string")


def input_items(body: dict[str, Any], id_prefix: str) -> list[dict[str, Any]]:
    """This request's input as items, each with its type and an id (`id_prefix` + position)
    when it came without one; the type of every item checked."""
    data = body["input"]
    if isinstance(data, str):
        data = [{"type": "message", "role": "user", "content": data}]
    items: list[dict[str, Any]] = []
    for i, item in enumerate(data):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _type_error(where, "an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind not in ITEM_TYPES:
            raise _bad(
                f"{where}.type",
                f"Invalid value for '{where}.type': {kind!r} is not a supported input item type; "
                f"supported types are {', '.join(ITEM_TYPES)}.",
                "unsupported_item_type",
            )
        out = {**item, "type": kind}
        if kind == "message" and isinstance(out.get("content"), str):  # as OpenAI lists it
            part = "output_text" if out.get("role") == "assistant" else "input_text"
            out["content"] = [{"type": part, "text": out["content"]}]
        if not isinstance(out.get("id"), str):
            out["id"] = f"{_ID_PREFIX[kind]}_{id_prefix}_{i}"
        items.append(out)
    return items


_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
_ID_PREFIX["reasoning"] = "rs"


def _text_of(value: Any, where: str) -> str:
    """The text of a tool output or assistant content: a string or text parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for j, part in enumerate(value):
            if not isinstance(part, dict):
                raise _type_error(f"{where}[{j}]", "an object")
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part.get("refusal"), str):
                texts.append(part["refusal"])
        return "".join(texts)
    raise _type_error(where, "a string or an array of content parts")


def _part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _type_error(where, "an object")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        if not isinstance(part.get("text"), str):
            raise _type_error(f"{where}.text", "a string")
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal") or "")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise _bad(
                f"{where}.image_url",
                "An input_image needs an 'image_url' (a URL or a data URL); file ids are not "
                "supported by this gateway.",
                "unsupported_parameter",
            )
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str) or not data:
            raise _bad(
                f"{where}.file_data",
                "An input_file needs 'file_data' (a data URL); file ids and URLs are not "
                "supported by this gateway.",
                "unsupported_parameter",
            )
        file = {"file_data": data, "filename": str(part.get("filename") or "file")}
        return {"type": "file", "file": file}
    raise _bad(
        f"{where}.type", f"Invalid value for '{where}.type': {kind!r}.", "unsupported_content_type"
    )


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = _ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise _bad(
            f"{where}.role",
            f"Invalid value for '{where}.role': {item.get('role')!r}; use user, system, "
            "developer or assistant.",
        )
    content = item.get("content")
    if role != "user":
        return {"role": role, "content": _text_of(content, f"{where}.content")}
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _type_error(f"{where}.content", "a string or an array of content parts")
    return {
        "role": role,
        "content": [_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)],
    }


def to_messages(items: list[dict[str, Any]], first: int = 0) -> list[dict[str, Any]]:
    """The chat messages of `items` (earlier ones included), refusing a
    `function_call_output` whose call is not among the items before it; `first` is the
    position of the first item of this request (for the names in errors)."""
    messages: list[dict[str, Any]] = []
    calls: set[str] = set()
    for i, item in enumerate(items):
        where = f"input[{i - first}]" if i >= first else "previous_response_id"
        kind = item["type"]
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise _bad(where, f"'{where}' needs a string 'call_id' and 'name'.")
            arguments = item.get("arguments")
            tool_call = {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments if isinstance(arguments, str) else "{}",
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(tool_call)
            elif last is not None and last["role"] == "assistant":
                last["tool_calls"] = [tool_call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [tool_call]})
            calls.add(call_id)
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or call_id not in calls:
                raise _bad(
                    f"{where}.call_id",
                    f"No tool call found for function call output with call_id {call_id!r}.",
                    "unknown_call_id",
                )
            output = _text_of(item.get("output"), f"{where}.output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
    return messages


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _type_error("tools", "an array")
    out = []
    for j, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise _type_error(f"tools[{j}]", "an object")
        if tool.get("type") != "function":
            raise _bad(
                f"tools[{j}].type",
                f"Tool type {tool.get('type')!r} is not supported by this gateway; only "
                "'function' tools are.",
                "unsupported_tool_type",
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise _bad(f"tools[{j}].name", f"Missing required parameter: 'tools[{j}].name'.")
        fn = {
            k: tool[k]
            for k in ("name", "description", "parameters", "strict")
            if tool.get(k) is not None
        }
        out.append({"type": "function", "function": fn})
    return out


def _echo_tool(fn: dict[str, Any]) -> dict[str, Any]:
    """A function tool as a response lists it."""
    return {
        "type": "function",
        "name": fn["name"],
        "description": fn.get("description"),
        "parameters": fn.get("parameters"),
        "strict": fn.get("strict", True),
    }


def _tool_choice(value: Any) -> Any:
    if value in ("auto", "none", "required"):
        return value
    if (
        isinstance(value, dict)
        and value.get("type") == "function"
        and isinstance(value.get("name"), str)
    ):
        return {"type": "function", "function": {"name": value["name"]}}
    raise _bad(
        "tool_choice",
        "'tool_choice' must be auto, none, required or {'type': 'function', 'name': ...}.",
    )


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        raise _type_error("text", "an object")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise _type_error("text.format", "an object")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict) or not isinstance(fmt.get("name"), str):
            raise _bad("text.format", "A json_schema format needs a 'name' and a 'schema'.")
        schema = {
            k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None
        }
        return {"type": "json_schema", "json_schema": schema}
    raise _bad("text.format.type", f"Invalid value for 'text.format.type': {kind!r}.")


def _sampling(body: dict[str, Any], hub: dict[str, Any]) -> None:
    for name, high in (("temperature", 2.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is None:
            continue
        if not _is_number(value):
            raise _type_error(name, "a number")
        if not 0 <= value <= high:
            raise _bad(name, f"Invalid '{name}': {value} is outside the range 0 to {high}.")
        hub[name] = value
    cap = body.get("max_output_tokens")
    if cap is not None:
        if not _is_int(cap):
            raise _type_error("max_output_tokens", "an integer")
        if not 1 <= cap <= 10_000_000:
            raise _bad("max_output_tokens", f"Invalid 'max_output_tokens': {cap}.")
        hub["max_tokens"] = cap
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _type_error("reasoning", "an object")
        effort = reasoning.get("effort")
        if effort is not None and effort not in _EFFORTS:
            raise _bad("reasoning.effort", f"Invalid value for 'reasoning.effort': {effort!r}.")
        if effort is not None and effort != "none":
            hub["reasoning_effort"] = effort


def _flags(body: dict[str, Any]) -> dict[str, Any]:
    for name in ("store", "stream", "parallel_tool_calls", "background"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise _type_error(name, "a boolean")
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or len(metadata) > 16
        or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise _bad("metadata", "'metadata' must be an object of at most 16 string values.")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _type_error("instructions", "a string")
    return {
        "instructions": instructions,
        "metadata": metadata or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice", "auto"),
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "max_output_tokens": body.get("max_output_tokens"),
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
        "user": body.get("user"),
    }


def to_request(
    body: dict[str, Any], request_id: str, prefix: list[dict[str, Any]] | None = None
) -> ResponsesRequest:
    """The hub call of a Responses body; `prefix` holds the items of the previous response
    (its input and output, already stored). BadRequest naming the bad field."""
    check_top_level(body)
    echo = _flags(body)
    hex_id = request_id.removeprefix("req_")
    items = input_items(body, hex_id)
    earlier = prefix or []
    instructions = echo["instructions"]
    system = [{"role": "system", "content": instructions}] if instructions else []
    hub: dict[str, Any] = {
        "model": body["model"],
        "messages": system + to_messages([*earlier, *items], len(earlier)),
    }
    if body.get("tools") is not None:
        tools = _tools(body["tools"])
        if tools:
            hub["tools"] = tools
        echo["tools"] = [_echo_tool(t["function"]) for t in tools]
    if body.get("tool_choice") is not None:
        hub["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("parallel_tool_calls") is not None and "tools" in hub:
        hub["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("text") is not None:
        fmt = _response_format(body["text"])
        if fmt is not None:
            hub["response_format"] = fmt
    _sampling(body, hub)
    if isinstance(body.get("user"), str):
        hub["user"] = body["user"]
    stream = bool(body.get("stream"))
    if stream:
        hub["stream"] = True
    native = {k: v for k, v in body.items() if k in _SENT and k != "previous_response_id"}
    native["input"] = [_for_upstream(i) for i in [*earlier, *items] if i["type"] != "reasoning"]
    call = NativeCall(
        model=body["model"],
        body=hub,
        stream=stream,
        include_usage=stream,
        max_output=hub.get("max_tokens"),
        request_id=request_id,
        api="responses",
        native=native,
    )
    store = body.get("store", True) is not False
    return ResponsesRequest(call, items, echo, store, body.get("previous_response_id"))


def _for_upstream(item: dict[str, Any]) -> dict[str, Any]:
    """An item as sent to a Responses upstream: without the gateway's ids and statuses."""
    return {k: v for k, v in item.items() if k not in ("id", "status")}
