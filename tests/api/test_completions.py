"""Legacy completions into the hub call, and what needs an upstream serving them itself."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from faregate.api.completions import from_chat, to_call
from faregate.errors import BadRequest

RID = "req_00112233445566778899aabb"


def _svc(native: bool) -> Any:
    dep = SimpleNamespace(provider="p", adapter=SimpleNamespace(name="openai"))
    entry = SimpleNamespace(deployments=(dep,))
    catalog = SimpleNamespace(get=lambda name: entry, chain=lambda e: [e])
    providers = {"p": SimpleNamespace(completions=native)}
    return SimpleNamespace(catalog=catalog, config=SimpleNamespace(providers=providers))


def test_a_prompt_becomes_one_user_message() -> None:
    call = to_call(
        _svc(False),
        {"model": "m", "prompt": "Once", "stop": ["\n"], "temperature": 0.1, "echo": True},
        RID,
    )
    assert call.body["messages"] == [{"role": "user", "content": "Once"}]
    assert call.body["max_tokens"] == call.max_output == 16  # OpenAI's default
    assert call.body["stop"] == ["\n"]
    assert "echo" not in call.body
    assert call.api == "completions"
    assert call.native["echo"] is True


def test_a_chat_reply_as_a_text_completion() -> None:
    call = to_call(_svc(False), {"model": "m", "prompt": "Once", "echo": True}, RID)
    reply = {
        "created": 5,
        "choices": [{"index": 0, "message": {"content": " upon"}, "finish_reason": "tool_calls"}],
    }
    out = from_chat(reply, call, "m", 3, 1)
    assert out["id"] == "cmpl-00112233445566778899aabb"
    assert out["choices"] == [
        {"text": "Once upon", "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": 1}, "logprobs"),
        ({"suffix": "x"}, "suffix"),
        ({"best_of": 2}, "best_of"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [[1, 2]]}, "prompt"),
    ],
)
def test_native_only_fields_need_native_upstreams(extra: dict[str, Any], param: str) -> None:
    body = {"model": "m", "prompt": "x", **extra}
    with pytest.raises(BadRequest) as err:
        to_call(_svc(False), dict(body), RID)
    assert err.value.param == param
    assert err.value.code == "unsupported_parameter"
    call = to_call(_svc(True), dict(body), RID)
    assert call.native == body


def test_several_prompts_are_held_for_every_choice() -> None:
    call = to_call(_svc(True), {"model": "m", "prompt": ["a", "b", "c"], "n": 2}, RID)
    assert call.body["n"] == 6
    assert len(call.body["messages"]) == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "m"}, "missing_required_parameter"),
        ({"model": "m", "prompt": 5}, "invalid_type"),
        ({"model": "m", "prompt": "x", "tools": []}, "unknown_parameter"),
        ({"prompt": "x"}, "missing_model"),
    ],
)
def test_refusals(body: dict[str, Any], code: str) -> None:
    with pytest.raises(BadRequest) as err:
        to_call(_svc(False), body, RID)
    assert err.value.code == code
