"""Image URLs in every client protocol reach a `gemini` upstream only through the fetch guard."""
# ruff: noqa: RUF001  (look-alike characters are what these tests are about)

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import Gateway, ledger_consistent

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\xdac\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99="
    b"\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


class Recorder:
    """A loopback server on 127.0.0.1 that counts connections and answers with a PNG."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n"
                        b"Connection: close\r\n\r\n%s" % (len(PNG), PNG)
                    )
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


def _openai(url: str) -> tuple[str, dict[str, Any]]:
    part = {"type": "image_url", "image_url": {"url": url}}
    content = [{"type": "text", "text": "what is this"}, part]
    return "/v1/chat/completions", {
        "model": "gemini-sim",
        "messages": [{"role": "user", "content": content}],
    }


def _anthropic(url: str) -> tuple[str, dict[str, Any]]:
    part = {"type": "image", "source": {"type": "url", "url": url}}
    content = [part, {"type": "text", "text": "what is this"}]
    return "/v1/messages", {
        "model": "gemini-sim",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": content}],
    }


def _gemini(url: str) -> tuple[str, dict[str, Any]]:
    part = {"fileData": {"mimeType": "image/png", "fileUri": url}}
    contents = [{"role": "user", "parts": [{"text": "what is this"}, part]}]
    return "/v1beta/models/gemini-sim:generateContent", {"contents": contents}


def _message(protocol: str, r: httpx.Response) -> str:
    error = r.json()["error"]
    if protocol == "openai":
        assert error["code"] == "url_refused"
    elif protocol == "anthropic":
        assert r.json()["type"] == "error"
        assert error["type"] == "invalid_request_error"
    else:
        assert error["status"] == "INVALID_ARGUMENT"
    return str(error["message"])


@pytest.mark.parametrize(
    "host",
    [
        "１２７.０.０.１",
        "①②⑦.0.0.1",
        "127。0。0。1",
        "0x7f000001",
        "[::ffff:127.0.0.1]",
        "localhost",
    ],
)
@pytest.mark.parametrize(
    ("protocol", "request_for"),
    [("openai", _openai), ("anthropic", _anthropic), ("gemini", _gemini)],
)
def test_internal_image_urls_are_refused_in_every_client_protocol(
    gateway: Gateway, recorder: Recorder, host: str, protocol: str, request_for: Any
) -> None:
    account, key = gateway.account(1_000_000)
    path, body = request_for(f"http://{host}:{recorder.port}/x.png")
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "x-goog-api-key": key}
    r = httpx.post(gateway.url + path, json=body, headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert "non-public address" in _message(protocol, r)
    assert recorder.connections == 0
    state = gateway.account_state(account)
    assert state["open_holds"] == 0
    assert state["balance"] == 1_000_000
    ledger_consistent(gateway, account)
