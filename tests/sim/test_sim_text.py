"""Deterministic text generation and token-exact slicing."""

from __future__ import annotations

import json

import pytest

from faregate.sim import text
from faregate.tokens import count_text


def test_reply_is_deterministic_and_echoes_prompt() -> None:
    first = text.reply_text("Tell me about rivers", "salt")
    assert first == text.reply_text("Tell me about rivers", "salt")
    assert first.startswith('You said: "Tell me about rivers".')
    assert first != text.reply_text("Tell me about rivers", "other salt")


@pytest.mark.parametrize("prompt", ["", "hi", "a much longer prompt " * 20, "é, ü; 東京!"])
def test_default_length_is_20_to_40_tokens(prompt: str) -> None:
    for seed in range(30):
        assert 20 <= count_text(text.reply_text(prompt, f"{seed}|{prompt}")) <= 40


@pytest.mark.parametrize("tokens", [0, 1, 2, 5, 17, 40, 41, 500])
def test_exact_length(tokens: int) -> None:
    reply = text.reply_text("What is the meaning of life, really?", "s", tokens)
    assert count_text(reply) == tokens


def test_truncate_and_segments() -> None:
    sample = '  Hello, world! "quoted" text.  '
    for limit in range(count_text(sample) + 2):
        cut = text.truncate_tokens(sample, limit)
        assert sample.startswith(cut)
        assert count_text(cut) == min(limit, count_text(sample))
    parts = text.segments(sample)
    assert "".join(parts) == sample
    assert len(parts) == count_text(sample)
    assert text.segments("") == []
    assert text.segments("   ") == ["   "]


def test_cut_at_stop() -> None:
    assert text.cut_at_stop("one two three", ["three", "two"]) == ("one ", True)
    assert text.cut_at_stop("one two", ["nine", ""]) == ("one two", False)


@pytest.mark.parametrize("tokens", [9, 10, 33])
def test_json_reply_is_valid_and_exact(tokens: int) -> None:
    reply = text.json_reply("s", tokens)
    assert count_text(reply) == tokens
    assert isinstance(json.loads(reply)["reply"], str)
    assert isinstance(json.loads(text.json_reply("s")), dict)


def test_schema_value() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 3},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "kind": {"enum": ["a", "b"]},
            "when": {"type": "string", "format": "date"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
            "pet": {"$ref": "#/$defs/pet"},
            "optional": {"type": "string"},
        },
        "required": ["name", "age", "score", "ok", "tags", "kind", "when", "maybe", "pet"],
        "$defs": {"pet": {"type": "object", "properties": {"legs": {"type": ["integer", "null"]}}}},
    }
    value = text.schema_value(schema, "salt")
    assert value == text.schema_value(schema, "salt")
    assert set(value) == set(schema["required"])
    assert isinstance(value["name"], str)
    assert value["age"] == 3
    assert isinstance(value["score"], float)
    assert value["ok"] is True
    assert len(value["tags"]) == 2
    assert value["kind"] == "a"
    assert value["when"] == "2024-01-01"
    assert isinstance(value["maybe"], int)
    assert isinstance(value["pet"]["legs"], int)
