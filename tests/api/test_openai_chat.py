"""The OpenAI chat renderer: an upstream chunk it need not change goes out as it came."""

from __future__ import annotations

from typing import Any, cast

from faregate.api.openai_chat import _render_chunk
from faregate.providers.base import ChatCall
from faregate.providers.openai import OpenAIChat

RAW = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'


def test_a_plain_chunk_is_forwarded_byte_for_byte_and_never_parsed() -> None:
    [event] = OpenAIChat().stream_decoder().feed(RAW)
    call = ChatCall("m", {"model": "m", "messages": []}, True, False, None, "r1")
    assert _render_chunk(cast(Any, None), event, call, None) == RAW
    assert not event.parsed


def test_a_chunk_hook_reads_and_rewrites_the_chunk() -> None:
    [event] = OpenAIChat().stream_decoder().feed(RAW)
    call = ChatCall("m", {"model": "m", "messages": []}, True, False, None, "r1")

    def hook(data: dict[str, Any], request_id: str) -> dict[str, Any]:
        return {**data, "id": "x"}

    out = _render_chunk(cast(Any, None), event, call, hook)
    assert out.startswith(b'data: {"choices"') and b'"id":"x"' in out
