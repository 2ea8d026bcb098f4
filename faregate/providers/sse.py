"""Server-Sent Events: an incremental decoder that never waits for the whole stream."""

from __future__ import annotations


class SSEDecoder:
    """Feed bytes as they arrive; get back (event name, data) for each complete event."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[tuple[str, bytes, bytes]]:
        """Complete events as (event, data, the raw event bytes including its blank line)."""
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A CR at the very end may be the first half of a CRLF split across chunks.
            held = buf.endswith(b"\r")
            if held:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            held = False
        out: list[tuple[str, bytes, bytes]] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            block = buf[start:end]
            start = end + 2
            event = ""
            data: list[bytes] = []
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    value = line[5:]
                    data.append(value[1:] if value.startswith(b" ") else value)
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
            if data or event:
                out.append((event, b"\n".join(data), block + b"\n\n"))
        self._buf = buf[start:] + (b"\r" if held else b"")
        return out
