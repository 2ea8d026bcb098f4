"""Token counts: deterministic, and bounded by the byte length of the text."""

from __future__ import annotations

from faregate import tokens


def test_count_text() -> None:
    assert tokens.count_text("Hello, world!") == 4
    assert tokens.count_text("") == 0


def test_upper_bound_bounds_the_count() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "héllo wörld, ünïcode!"},
                {"type": "image_url", "image_url": {"url": "x"}},
            ],
        },
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"a":1}'}}]},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert tokens.count_messages(messages, tools) <= tokens.prompt_upper_bound(messages, tools)
    assert tokens.count_messages(messages) >= tokens.IMAGE_TOKENS
