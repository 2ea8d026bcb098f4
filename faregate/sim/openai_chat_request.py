"""Validation of OpenAI chat completion request bodies, with OpenAI's 400 errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from faregate.sim.openai_common import invalid_param

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
REASONING_TOKENS = {"none": 0, "minimal": 0, "low": 8, "medium": 16, "high": 32, "xhigh": 64}
MAX_N = 128
MAX_STOPS = 4


@dataclass(slots=True)
class ChatRequest:
    """The validated parts of a chat completion request the simulator uses."""

    model: str
    messages: list[Any]
    raw_tools: Any
    tools: list[dict[str, Any]]
    tool_choice: Any
    parallel_tool_calls: bool
    stream: bool
    include_usage: bool
    n: int
    cap: int | None
    stops: list[str]
    seed: Any
    reasoning_effort: str | None
    response_format: str
    json_schema: Any
    prompt_cache_key: bool


def parse_request(body: dict[str, Any]) -> ChatRequest | web.Response:
    """Validate a request body the way OpenAI does; a 400 response on failure."""
    model = body.get("model")
    if model is None:
        return invalid_param("you must provide a model parameter", "model")
    if not isinstance(model, str) or not model:
        return invalid_param(_type_message("model", "a non-empty string", model), "model")
    messages = body.get("messages")
    if messages is None:
        return invalid_param(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        return invalid_param(_type_message("messages", "an array", messages), "messages")
    if not messages:
        return invalid_param(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return invalid_param(_type_message(f"messages[{i}]", "an object", message), "messages")
        if message.get("role") not in ROLES:
            return invalid_param(
                f"Invalid value: '{message.get('role')}'. Supported values are: 'system', "
                "'assistant', 'user', 'function', 'tool', and 'developer'.",
                f"messages[{i}].role",
                "invalid_value",
            )

    n = body.get("n")
    n = 1 if n is None else n
    if not _is_int(n) or not 1 <= n <= MAX_N:
        return invalid_param(f"Invalid 'n': expected an integer 1-{MAX_N}.", "n")
    cap: int | None = None
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            return invalid_param(
                f"Invalid '{name}': expected an integer >= 1, but got {value!r} instead.",
                name,
                "integer_below_min_value",
            )
        cap = value if cap is None else min(cap, value)

    stop = body.get("stop")
    stops: list[str]
    if stop is None:
        stops = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > MAX_STOPS:
            return invalid_param(
                f"Invalid 'stop': array too long. Expected at most {MAX_STOPS} items.", "stop"
            )
        stops = list(stop)
    else:
        return invalid_param(_type_message("stop", "a string or array of strings", stop), "stop")

    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return invalid_param(_type_message("stream", "a boolean", stream), "stream")
    stream_options = body.get("stream_options")
    if stream_options is not None and not stream:
        return invalid_param(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if stream_options is not None and not isinstance(stream_options, dict):
        return invalid_param(
            _type_message("stream_options", "an object", stream_options), "stream_options"
        )
    include_usage = bool(stream_options and stream_options.get("include_usage"))

    tools_or_error = _parse_tools(body)
    if isinstance(tools_or_error, web.Response):
        return tools_or_error
    tools = tools_or_error
    tool_choice = body.get("tool_choice")
    forced = forced_tool(tool_choice)
    if forced is not None and not any(t["function"]["name"] == forced for t in tools):
        return invalid_param(
            f"Invalid value for 'tool_choice': function '{forced}' is not among the tools.",
            "tool_choice",
        )
    if tool_choice == "required" and not tools:
        return invalid_param(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
            "are specified.",
            "tool_choice",
        )

    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_TOKENS:
        return invalid_param(
            f"Invalid value: '{effort}'. Supported values are: "
            + ", ".join(f"'{e}'" for e in REASONING_TOKENS)
            + ".",
            "reasoning_effort",
            "invalid_value",
        )

    format_or_error = _parse_response_format(body.get("response_format"))
    if isinstance(format_or_error, web.Response):
        return format_or_error
    format_kind, schema = format_or_error

    return ChatRequest(
        model=model,
        messages=messages,
        raw_tools=body.get("tools"),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=body.get("parallel_tool_calls") is not False,
        stream=bool(stream),
        include_usage=include_usage,
        n=n,
        cap=cap,
        stops=stops,
        seed=body.get("seed"),
        reasoning_effort=effort,
        response_format=format_kind,
        json_schema=schema,
        prompt_cache_key=body.get("prompt_cache_key") is not None,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_message(param: str, expected: str, value: Any) -> str:
    got = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )
    return f"Invalid type for '{param}': expected {expected}, but got {got} instead."


def _parse_tools(body: dict[str, Any]) -> list[dict[str, Any]] | web.Response:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        return invalid_param(_type_message("tools", "an array", tools), "tools")
    functions: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return invalid_param(_type_message(f"tools[{i}]", "an object", tool), "tools")
        if tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return invalid_param(
                f"Missing required parameter: 'tools[{i}].function.name'.",
                f"tools[{i}].function.name",
                "missing_required_parameter",
            )
        functions.append(tool)
    return functions


def forced_tool(tool_choice: Any) -> str | None:
    """The function `tool_choice` forces, or None."""
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        function = tool_choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def _parse_response_format(value: Any) -> tuple[str, Any] | web.Response:
    if value is None:
        return "text", None
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(value, dict) or kind not in ("text", "json_object", "json_schema"):
        return invalid_param(
            "Invalid value for 'response_format.type': expected 'text', 'json_object' or "
            "'json_schema'.",
            "response_format.type",
            "invalid_value",
        )
    if kind != "json_schema":
        return str(kind), None
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        return invalid_param(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )
    return "json_schema", spec.get("schema", {"type": "object", "properties": {}})
