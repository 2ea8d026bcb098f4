"""The incremental SSE decoder."""

from __future__ import annotations

from faregate.providers.sse import SSEDecoder


def test_events_split_across_chunks() -> None:
    d = SSEDecoder()
    assert d.feed(b"event: ping\nda") == []
    assert d.feed(b"ta: {}\n") == []
    assert d.feed(b"\ndata: a\ndata: b\n\n") == [
        ("ping", b"{}", b"event: ping\ndata: {}\n\n"),
        ("", b"a\nb", b"data: a\ndata: b\n\n"),
    ]


def test_comments_and_blank_blocks_are_skipped() -> None:
    d = SSEDecoder()
    assert d.feed(b": keep-alive\n\n\n\ndata:x\n\n") == [("", b"x", b"data:x\n\n")]


def test_crlf_split_between_chunks() -> None:
    d = SSEDecoder()
    raw = b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"
    for cut in range(1, len(raw)):
        d = SSEDecoder()
        events = d.feed(raw[:cut]) + d.feed(raw[cut:])
        assert [e[1] for e in events] == [b"a\nb", b"c"], cut
