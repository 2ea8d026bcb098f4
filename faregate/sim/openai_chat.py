"""The OpenAI Chat Completions protocol: `POST /v1/chat/completions`.

Replies are deterministic (see `faregate.sim.text`) and usage is exact:

* prompt_tokens = `faregate.tokens.count_messages(messages, tools)` with the
  request's raw `messages` and `tools`.
* completion_tokens = per choice, `count_text(content)` for a text reply or
  the sum of `count_text(name) + count_text(arguments)` over its tool calls,
  plus its reasoning tokens; summed over the `n` choices.
* reasoning_tokens = per choice 8/16/32/64 for `reasoning_effort`
  low/medium/high/xhigh (0 when unset, "none" or "minimal"); the
  `reasoning_tokens=N` directive overrides it.
* cached_tokens = the largest multiple of 128 not above prompt_tokens / 2 when
  the request has a `prompt_cache_key` or prompt_tokens >= 1024, else 0; the
  `cached_tokens=N` directive overrides it (capped at prompt_tokens).

`max_completion_tokens` (or `max_tokens`) caps reasoning plus visible text;
a reply cut by the cap ends with finish_reason "length". Stop sequences cut
the text first. Tool-call replies are never capped. The `tokens=N` directive
fixes the text of plain and json_object replies (before stop and cap); it does
not apply to json_schema replies or tool calls.

Streams send one content delta per token. For stall_after/cut_after, every
chunk after a choice's first one counts as a content chunk except the finish,
usage and [DONE] chunks: text deltas, and for tool calls the argument
fragments and the header chunks of the second and later calls.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from faregate.sim import text
from faregate.sim.faults import (
    FAULT_HEADER,
    ChunkWriter,
    FaultScript,
    FaultScriptError,
    StreamStopped,
    parse_script,
    pause,
    resolve_script,
    select_script,
    send_partial_body,
    wait_for_disconnect,
)
from faregate.sim.openai_common import (
    check_auth,
    fault_error_response,
    invalid_param,
    json_response,
    now,
    request_headers,
)
from faregate.sim.state import STATE
from faregate.tokens import count_messages, count_text

ROUTE = "/v1/chat/completions"
FINGERPRINT = "fp_sim"

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
REASONING_TOKENS = {"none": 0, "minimal": 0, "low": 8, "medium": 16, "high": 32, "xhigh": 64}
CACHE_THRESHOLD = 1024
CACHE_BLOCK = 128
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


@dataclass(slots=True)
class Choice:
    """One generated choice: text or tool calls, and its token accounting."""

    index: int
    content: str | None
    finish_reason: str
    completion_tokens: int
    reasoning_tokens: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Handle one chat completion request, faults included."""
    state = request.app[STATE]
    state.count_request(ROUTE)
    if (denied := check_auth(request)) is not None:
        return denied
    try:
        decoded = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        decoded = None
    body: dict[str, Any] | None = decoded if isinstance(decoded, dict) else None
    model = body.get("model") if body is not None else None
    if isinstance(model, str):
        state.count_model(model)
    try:
        script = parse_script(select_script(request.headers.get(FAULT_HEADER), body))
    except FaultScriptError as exc:
        return invalid_param(str(exc), None, "invalid_sim_fault")
    script = resolve_script(script, state)

    await pause(script.latency_ms if script.latency_ms is not None else state.latency_ms)
    if script.hang:
        await wait_for_disconnect(request)
        return web.Response(status=499)
    failure = fault_error_response(script, model if isinstance(model, str) else "unknown")
    if failure is not None:
        return failure
    if body is None:
        return invalid_param(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)",
            None,
        )
    parsed = parse_request(body)
    if isinstance(parsed, web.Response):
        return parsed

    choices = generate(parsed, script)
    usage = usage_for(parsed, choices, script)
    chunk_delay = script.chunk_delay_ms
    delay = chunk_delay if chunk_delay is not None else state.chunk_delay_ms
    if parsed.stream:
        return await _stream(request, parsed, choices, usage, script, delay)
    payload = completion_payload(parsed, choices, usage)
    if script.cut_after is not None or script.stall_after is not None:
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", **request_headers()}
        )
        return await send_partial_body(request, response, orjson.dumps(payload), script)
    return json_response(payload, headers=request_headers())


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
    forced = _forced_tool(tool_choice)
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


def _forced_tool(tool_choice: Any) -> str | None:
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


def last_user_text(messages: list[Any]) -> str:
    """The text of the last user message ("" when there is none)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    part["text"]
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
            return ""
    return ""


def tools_to_call(req: ChatRequest, prompt: str) -> list[dict[str, Any]]:
    """The function tools this request makes the simulated model call.

    "none" calls nothing; a forced function is always called; otherwise the
    tools named in the last user message are called (a message mentioning
    "weather" names the weather tool, or the first tool), unless the last
    message is a tool result; "required" falls back to the first tool. With
    `parallel_tool_calls` false, only the first is called.
    """
    if not req.tools or req.tool_choice == "none":
        return []
    forced = _forced_tool(req.tool_choice)
    if forced is not None:
        return [next(t for t in req.tools if t["function"]["name"] == forced)]
    required = req.tool_choice == "required"
    last = req.messages[-1]
    if last.get("role") in ("tool", "function") and not required:
        return []
    lowered = prompt.lower()
    named = [t for t in req.tools if _mentions(lowered, t["function"]["name"])]
    if not named and "weather" in lowered:
        weather = [t for t in req.tools if "weather" in t["function"]["name"].lower()]
        named = weather[:1] or req.tools[:1]
    if not named and required:
        named = req.tools[:1]
    return named if req.parallel_tool_calls else named[:1]


def _mentions(lowered_text: str, name: str) -> bool:
    name = name.lower()
    return name in lowered_text or name.replace("_", " ") in lowered_text


def generate(req: ChatRequest, script: FaultScript) -> list[Choice]:
    """The `n` choices of a request, deterministically."""
    prompt = last_user_text(req.messages)
    calls = tools_to_call(req, prompt)
    reasoning = script.reasoning_tokens
    if reasoning is None:
        reasoning = REASONING_TOKENS.get(req.reasoning_effort or "none", 0)
    choices: list[Choice] = []
    for index in range(req.n):
        salt = f"{req.seed}|{index}|{prompt}"
        if calls:
            choices.append(_tool_choice(index, calls, prompt, salt, reasoning))
        else:
            choices.append(_text_choice(index, req, prompt, salt, reasoning, script.tokens))
    return choices


def _tool_choice(
    index: int, calls: list[dict[str, Any]], prompt: str, salt: str, reasoning: int
) -> Choice:
    tool_calls: list[dict[str, Any]] = []
    tokens = reasoning
    for position, tool in enumerate(calls):
        function = tool["function"]
        name: str = function["name"]
        params = function.get("parameters") or {"type": "object", "properties": {}}
        arguments = orjson.dumps(text.schema_value(params, f"{name}|{prompt}")).decode()
        tool_calls.append(
            {
                "id": "call_" + text.stable_hex(f"call|{salt}|{position}|{name}"),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        )
        tokens += count_text(name) + count_text(arguments)
    return Choice(index, None, "tool_calls", tokens, reasoning, tool_calls)


def _text_choice(
    index: int, req: ChatRequest, prompt: str, salt: str, reasoning: int, tokens: int | None
) -> Choice:
    if req.response_format == "json_schema":
        content = orjson.dumps(text.schema_value(req.json_schema, salt)).decode()
    elif req.response_format == "json_object":
        content = text.json_reply(salt, tokens)
    else:
        content = text.reply_text(prompt, salt, tokens)
    content, _ = text.cut_at_stop(content, req.stops)
    finish = "stop"
    if req.cap is not None:
        reasoning = min(reasoning, req.cap)
        visible_cap = req.cap - reasoning
        if count_text(content) > visible_cap:
            content = text.truncate_tokens(content, visible_cap)
            finish = "length"
    return Choice(index, content, finish, count_text(content) + reasoning, reasoning)


def usage_for(req: ChatRequest, choices: list[Choice], script: FaultScript) -> dict[str, Any]:
    """The exact usage object of a response."""
    prompt = count_messages(req.messages, req.raw_tools)
    if script.cached_tokens is not None:
        cached = min(script.cached_tokens, prompt)
    elif req.prompt_cache_key or prompt >= CACHE_THRESHOLD:
        cached = prompt // 2 // CACHE_BLOCK * CACHE_BLOCK
    else:
        cached = 0
    completion = sum(choice.completion_tokens for choice in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum(choice.reasoning_tokens for choice in choices),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_payload(
    req: ChatRequest, choices: list[Choice], usage: dict[str, Any]
) -> dict[str, Any]:
    """The non-streaming `chat.completion` object."""
    out: list[dict[str, Any]] = []
    for choice in choices:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.content,
            "refusal": None,
            "annotations": [],
        }
        if choice.tool_calls:
            message["tool_calls"] = choice.tool_calls
        out.append(
            {
                "index": choice.index,
                "message": message,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
        )
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": now(),
        "model": req.model,
        "choices": out,
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def _completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def _choice_deltas(choice: Choice) -> list[tuple[dict[str, Any], bool]]:
    """The (delta, is_content) pairs of one streamed choice, before its finish chunk."""
    if not choice.tool_calls:
        first = {"role": "assistant", "content": "", "refusal": None}
        pieces = text.segments(choice.content or "")
        return [(first, False), *(({"content": piece}, True) for piece in pieces)]
    deltas: list[tuple[dict[str, Any], bool]] = []
    for position, call in enumerate(choice.tool_calls):
        header = {
            "index": position,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        if position == 0:
            deltas.append(({"role": "assistant", "content": None, "tool_calls": [header]}, False))
        else:
            deltas.append(({"tool_calls": [header]}, True))
        for piece in text.segments(call["function"]["arguments"]):
            fragment = {"index": position, "function": {"arguments": piece}}
            deltas.append(({"tool_calls": [fragment]}, True))
    return deltas


async def _stream(
    request: web.Request,
    req: ChatRequest,
    choices: list[Choice],
    usage: dict[str, Any],
    script: FaultScript,
    chunk_delay_ms: float,
) -> web.StreamResponse:
    base: dict[str, Any] = {
        "id": _completion_id(),
        "object": "chat.completion.chunk",
        "created": now(),
        "model": req.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if req.include_usage:
        base["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish: str | None) -> bytes:
        entry = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**base, "choices": [entry]}) + b"\n\n"

    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            **request_headers(),
        }
    )
    await response.prepare(request)
    writer = ChunkWriter(request, response, script, chunk_delay_ms)
    per_choice = [_choice_deltas(choice) for choice in choices]
    try:
        for step in range(max(len(deltas) for deltas in per_choice)):
            for choice, deltas in zip(choices, per_choice, strict=True):
                if step < len(deltas):
                    delta, is_content = deltas[step]
                    await writer.send(chunk(choice.index, delta, None), content=is_content)
        for choice in choices:
            await writer.send(chunk(choice.index, {}, choice.finish_reason), content=False)
        if req.include_usage and not script.no_usage:
            final = {**base, "choices": [], "usage": usage}
            await writer.send(b"data: " + orjson.dumps(final) + b"\n\n", content=False)
        await writer.send(b"data: [DONE]\n\n", content=False)
    except StreamStopped:
        return response
    await response.write_eof()
    return response
