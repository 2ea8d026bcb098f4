"""Random ids for rows and requests: hex from a buffer of the OS's randomness."""

from __future__ import annotations

import os
import threading

_BUFFER = 4096  # one read of the OS's randomness serves about 200 ids

_lock = threading.Lock()
_buf = b""
_pos = 0


def random_hex(nbytes: int) -> str:
    """`nbytes` bytes from the OS's randomness (as `secrets.token_hex`), as hex. The bytes
    come from a buffer refilled a page at a time, one system call for many ids; a forked
    child starts with an empty buffer, so no two processes hand out the same bytes."""
    global _buf, _pos
    with _lock:
        end = _pos + nbytes
        if end > len(_buf):
            _buf, _pos, end = os.urandom(max(_BUFFER, nbytes)), 0, nbytes
        out = _buf[_pos:end]
        _pos = end
    return out.hex()


def _forget() -> None:
    global _buf, _pos, _lock
    _lock = threading.Lock()
    _buf, _pos = b"", 0


os.register_at_fork(after_in_child=_forget)
