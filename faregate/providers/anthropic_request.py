"""The hub chat request as an Anthropic Messages request body (pure; see `anthropic.py`)."""

from __future__ import annotations

from typing import Any

from faregate.providers.anthropic_content import cache_control, convert_messages
from faregate.providers.anthropic_wire import DEFAULT_MAX_TOKENS, JSON_TOOL, invalid, unsupported
from faregate.providers.base import ChatCall

MIN_BUDGET = 1024
"""Anthropic's smallest `thinking.budget_tokens`."""

LEVEL_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
"""`thinking_level` / `reasoning_effort` -> `thinking.budget_tokens` ("none": no thinking)."""

JSON_OBJECT_INSTRUCTION = (
    "Respond with one valid JSON object and nothing else: no prose, no code fences."
)

# Fields read below, and the values of the unsupported ones that mean "not asked for".
_HANDLED = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "top_k", "stop", "tools", "tool_choice", "parallel_tool_calls",
        "response_format", "reasoning_effort", "thinking_level", "thinking_budget", "user",
        "metadata",
    }
)  # fmt: skip
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logit_bias": ({},),
    "safety_settings": ([],),
    "store": (False,),
    "service_tier": ("auto", "default"),
}


def build_body(call: ChatCall, upstream_model: str) -> dict[str, Any]:
    """The Messages request for `call`; BadRequest for anything Anthropic cannot express."""
    body = call.body
    _refuse_unsupported(body)
    system, messages = convert_messages(body.get("messages") or [])
    budget, max_tokens = thinking_budget(body, call.max_output)
    out: dict[str, Any] = {"model": upstream_model, "max_tokens": max_tokens}
    tools, tool_choice = convert_tools(body, thinking=budget is not None)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object" and budget is not None:
        # With thinking no tool can be forced: ask for JSON in words instead.
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    if system:
        plain = len(system) == 1 and set(system[0]) == {"type", "text"}
        out["system"] = system[0]["text"] if plain else system
    out["messages"] = messages
    if budget is not None:
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = stop
    if tools:
        out["tools"] = tools
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if call.stream:
        out["stream"] = True
    return out


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if name in _HANDLED or value is None:
            continue
        if name in _NEUTRAL and any(_same(value, n) for n in _NEUTRAL[name]):
            continue
        if name in ("response_modalities", "modalities") and isinstance(value, list):
            if all(isinstance(m, str) and m.lower() == "text" for m in value):
                continue
            raise unsupported(name, "Output modalities other than text")
        raise unsupported(name, f"The '{name}' parameter")


def _same(value: Any, neutral: Any) -> bool:
    """Equal and of the same kind (so that True is not 1 and False is not 0)."""
    return isinstance(value, bool) == isinstance(neutral, bool) and value == neutral


# -- thinking, tools, output format ------------------------------------------------------


def thinking_budget(body: dict[str, Any], max_output: int | None) -> tuple[int | None, int]:
    """(thinking budget or None, max_tokens). The budget comes from `thinking_budget` (0 turns
    thinking off, -1 means "dynamic": the medium budget, below 1024 rises to 1024), else from
    `thinking_level`, else `reasoning_effort` via LEVEL_BUDGETS. Thinking counts against
    max_tokens: a level's budget is capped at max_tokens - 1, an explicit one must fit."""
    budget: int | None = None
    explicit = body.get("thinking_budget")
    if explicit is not None:
        if not isinstance(explicit, int) or isinstance(explicit, bool) or explicit < -1:
            raise invalid("thinking_budget", "thinking_budget must be an integer >= -1.")
        if explicit == -1:
            budget = LEVEL_BUDGETS["medium"]
        elif explicit > 0:
            budget = max(explicit, MIN_BUDGET)
    else:
        for name in ("thinking_level", "reasoning_effort"):
            level = body.get(name)
            if level is None:
                continue
            key = level.lower() if isinstance(level, str) else None
            if key != "none" and key not in LEVEL_BUDGETS:
                raise invalid(name, f"{name} must be one of none, {', '.join(LEVEL_BUDGETS)}.")
            budget = LEVEL_BUDGETS.get(key or "")
            break
    if budget is None:
        return None, max_output or DEFAULT_MAX_TOKENS
    if max_output is None:
        return budget, budget + DEFAULT_MAX_TOKENS
    if budget >= max_output:
        if explicit is not None and explicit != -1:
            raise invalid(
                "thinking_budget",
                f"thinking_budget ({budget}) must be less than max_tokens ({max_output}; a "
                "larger max_tokens is clamped to the model's output cap).",
            )
        budget = max_output - 1
        if budget < MIN_BUDGET:
            raise invalid(
                "max_tokens",
                f"Thinking on Anthropic models needs max_tokens above {MIN_BUDGET} "
                "(thinking counts against max_tokens).",
            )
    return budget, max_output


def convert_tools(
    body: dict[str, Any], *, thinking: bool
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(tools, tool_choice), the `json_schema` answer tool included when it is needed."""
    raw = body.get("tools") or []
    if not isinstance(raw, list):
        raise invalid("tools", "tools must be an array.")
    tools = [_tool(tool, f"tools[{j}]") for j, tool in enumerate(raw)]
    choice = _tool_choice(body.get("tool_choice"), bool(tools))
    if body.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        if thinking:
            return tools, choice  # asked for in the system prompt instead
        fmt = {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return tools, choice
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise invalid(
            "response_format", "response_format.type must be text, json_object or json_schema."
        )
    if choice is not None and choice["type"] in ("any", "tool"):
        return tools, choice  # the answer must be a tool call: no JSON answer this turn
    if thinking:
        raise unsupported(
            "response_format",
            "json_schema together with thinking (it needs forced tool use, which Anthropic "
            "does not allow with thinking)",
        )
    if any(t["name"] == JSON_TOOL for t in tools):
        raise invalid("tools", f"The tool name '{JSON_TOOL}' is reserved for json_schema.")
    tools.append(_answer_tool(fmt.get("json_schema")))
    if tools[:-1] and (choice is None or choice["type"] == "auto"):
        choice = {"type": "any", "disable_parallel_tool_use": True}
    else:
        choice = {"type": "tool", "name": JSON_TOOL, "disable_parallel_tool_use": True}
    return tools, choice


def _answer_tool(spec: Any) -> dict[str, Any]:
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise unsupported(
            "response_format.json_schema.schema", "A json_schema whose root is not an object"
        )
    name = spec.get("name") if isinstance(spec, dict) else None
    about = spec.get("description") if isinstance(spec, dict) else None
    description = "Give your answer by calling this tool; its input is the answer"
    description += f" ({name})." if isinstance(name, str) and name else "."
    if isinstance(about, str) and about:
        description += " " + about
    return {"name": JSON_TOOL, "description": description, "input_schema": schema}


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise invalid(where, f"{where} must be an object.")
    if tool.get("type", "function") != "function":
        raise unsupported(f"{where}.type", f"Tools of type {tool.get('type')!r}")
    fn = tool.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise invalid(f"{where}.function.name", f"{where}.function.name is required.")
    schema = fn.get("parameters")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise unsupported(f"{where}.function.parameters", "Tool parameters that are not an object")
    out: dict[str, Any] = {"name": fn["name"]}
    if isinstance(fn.get("description"), str) and fn["description"]:
        out["description"] = fn["description"]
    out["input_schema"] = schema if "type" in schema else {"type": "object", **schema}
    if fn.get("strict") is True:
        out["strict"] = True
    return cache_control(tool, out)


def _tool_choice(choice: Any, have_tools: bool) -> dict[str, Any] | None:
    if choice is None or (not have_tools and choice in ("auto", "none")):
        return None
    if not have_tools:
        raise invalid("tool_choice", "tool_choice needs tools.")
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    fn = choice.get("function") if isinstance(choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(name, str):
        return {"type": "tool", "name": name}
    raise unsupported("tool_choice", f"tool_choice {choice!r}")
