"""The hub types every adapter shares: a call's capped copy, a stream event read lazily."""

from __future__ import annotations

import dataclasses

from faregate.providers.base import ChatCall, StreamEvent
from faregate.providers.native import NativeCall


def test_a_capped_copy_keeps_every_other_field_and_the_type() -> None:
    plain = ChatCall("m", {"a": 1}, True, True, None, "req_1")
    native = NativeCall("m", {"a": 1}, False, False, 9, "req_2", "responses", {"input": "x"})
    for call in (plain, native):
        copy = call.with_max_output(5)
        assert type(copy) is type(call) and copy is not call
        assert copy.max_output == 5 and call.max_output != 5
        assert dataclasses.replace(call, max_output=5) == copy


def test_an_unread_event_parses_once_on_first_read() -> None:
    event = StreamEvent.unread(b'{"choices":[{"delta":{"content":"hi"}}]}', b"raw", lambda d: "t")
    assert (event.parsed, event.ends, event.raw, event.usage, event.cost) == (
        False,
        False,
        b"raw",
        None,
        None,
    )
    assert event.text == "t" and event.parsed
    assert event.data == {"choices": [{"delta": {"content": "hi"}}]}
    event.data = None
    assert event.ends and event.parsed
