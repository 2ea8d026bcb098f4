"""A metered multipart route inside the app: a malformed body, a part over its cap, a missing
boundary or a body cut short answer 400/413 in the route's envelope and hold nothing; a good
form is parsed, held for and released, and its files are gone once the response has ended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faregate.api.common import authenticate, form_body
from faregate.app import App, Environment
from faregate.config import Config
from faregate.http.multipart import UploadFile
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.kinds import Kind

ADMIN = "fga-form-test-admin-key-of-32-characters"
BOUNDARY = "faregate-form-boundary"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)
HOLD = 1_000


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    config = Config.model_validate(
        {"server": {"max_body_bytes": 64 * 1024, "max_part_bytes": 8 * 1024, "max_parts": 5}}
    )
    env = Environment(f"sqlite:///{tmp_path / 'faregate.db'}", tmp_path, "form-test-secret", ADMIN)
    gateway = App(config, env)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


class Uploads:
    """The test-only route: reads the form, then holds credits and releases them, as a media
    route does before and after its upstream call."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.files: list[UploadFile] = []

    async def __call__(self, req: Request) -> Response:
        svc = self.app.services
        assert svc is not None
        form = await form_body(svc, req)
        self.files += form.files("image")
        key = await authenticate(svc, req)
        ticket = await svc.store.hold(
            account_id=key.account_id,
            key_id=key.id,
            amount=HOLD,
            model="test-upload",
            request_id="req-form-test",
            ttl_ms=60_000,
        )
        assert ticket is not None
        await svc.store.release(ticket, "test upload")
        return Response.json(
            {
                "prompt": form.get("prompt"),
                "images": [(f.filename, f.content_type, f.size) for f in form.files("image")],
            }
        )


@pytest.fixture
def uploads(app: App) -> Uploads:
    handler = Uploads(app)
    app.router.add("/v1/test/uploads", ["POST"], handler, "openai", Kind.IMAGES)
    app.router.add("/v1beta/test/uploads", ["POST"], handler, "gemini", Kind.IMAGES)
    return handler


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


async def admin(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
    r = await client.request(
        method, f"/admin/v1{path}", headers={"authorization": f"Bearer {ADMIN}"}, **kw
    )
    assert r.status_code < 300, r.text
    return r.json()


@pytest.fixture
async def account(client: httpx.AsyncClient) -> tuple[str, str]:
    acct = await admin(client, "POST", "/accounts", json={"name": "forms", "credits": 50_000})
    key = await admin(client, "POST", f"/accounts/{acct['id']}/keys", json={"name": "k"})
    return acct["id"], key["key"]


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"\r\nContent-Type: image/png'
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def post(
    client: httpx.AsyncClient,
    key: str,
    body: bytes,
    ctype: str = f"multipart/form-data; boundary={BOUNDARY}",
    path: str = "/v1/test/uploads",
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", "content-type": ctype}
    return await client.post(path, content=body, headers=headers)


async def ledger(client: httpx.AsyncClient, account_id: str) -> tuple[int, int, int]:
    """(balance, open holds, ledger rows) of the account."""
    state = await admin(client, "GET", f"/accounts/{account_id}")
    rows = await admin(client, "GET", f"/accounts/{account_id}/ledger?limit=1000")
    return state["balance"], state["open_holds"], len(rows["data"])


async def test_a_good_form_is_parsed_held_for_and_its_files_removed(
    client: httpx.AsyncClient, account: tuple[str, str], uploads: Uploads
) -> None:
    account_id, key = account
    before = await ledger(client, account_id)
    big = PNG + bytes(5000)
    r = await post(
        client,
        key,
        form(part("prompt", b"a cat"), part("image[]", PNG, "a.png"), part("image[]", big, "b")),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "prompt": "a cat",
        "images": [["a.png", "image/png", len(PNG)], ["b", "image/png", len(big)]],
    }
    assert r.headers["x-faregate-cost"] == "0"
    balance, open_holds, rows = await ledger(client, account_id)
    assert (balance, open_holds, rows) == (before[0], 0, before[2] + 2)  # a hold, a release
    assert len(uploads.files) == 2
    assert all(f.file.closed for f in uploads.files)


BAD = [
    pytest.param(
        form(part("prompt", b"x")), "multipart/form-data", 400, "invalid_multipart", id="no-bound"
    ),
    pytest.param(
        form(part("prompt", b"x")), "application/json", 400, "invalid_multipart", id="json"
    ),
    pytest.param(
        b"--" + BOUNDARY.encode() + b"\r\ngarbage without headers",
        None,
        400,
        "invalid_multipart",
        id="malformed",
    ),
    pytest.param(
        form(part("image", PNG + bytes(9000), "big.png")),
        None,
        413,
        "payload_too_large",
        id="part-too-large",
    ),
    pytest.param(
        form(*(part(f"f{i}", b"v") for i in range(6))), None, 413, "payload_too_large", id="parts"
    ),
    pytest.param(
        form(part("prompt", bytes(70 * 1024))), None, 413, "payload_too_large", id="body-too-large"
    ),
]


@pytest.mark.parametrize(("body", "ctype", "status", "code"), BAD)
async def test_a_bad_form_answers_in_the_envelope_and_holds_nothing(
    client: httpx.AsyncClient,
    account: tuple[str, str],
    uploads: Uploads,
    body: bytes,
    ctype: str | None,
    status: int,
    code: str,
) -> None:
    account_id, key = account
    before = await ledger(client, account_id)
    r = await post(client, key, body, *([ctype] if ctype else []))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "code", "param"}
    assert (err["type"], err["code"]) == ("invalid_request_error", code)
    assert r.headers["x-faregate-cost"] == "0"
    assert await ledger(client, account_id) == before


async def test_a_part_over_its_cap_is_named(
    client: httpx.AsyncClient, account: tuple[str, str], uploads: Uploads
) -> None:
    r = await post(client, account[1], form(part("image", bytes(9000), "big.png")))
    assert r.status_code == 413
    assert r.json()["error"]["param"] == "image"
    assert "'image'" in r.json()["error"]["message"]


async def test_the_gemini_envelope_on_a_gemini_route(
    client: httpx.AsyncClient, account: tuple[str, str], uploads: Uploads
) -> None:
    r = await post(client, account[1], b"", "multipart/form-data", "/v1beta/test/uploads")
    assert r.status_code == 400
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "no boundary" in r.json()["error"]["message"]


async def test_a_body_cut_short_holds_nothing(
    app: App, client: httpx.AsyncClient, account: tuple[str, str], uploads: Uploads
) -> None:
    """The client sends half the form and leaves; the parser never sees the closing
    boundary."""
    account_id, key = account
    before = await ledger(client, account_id)
    raw = form(part("prompt", b"x"), part("image", PNG, "a.png"))
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": raw[:40], "more_body": True},
        {"type": "http.request", "body": raw[40:80], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/test/uploads",
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
        ],
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert b"ended before its closing boundary" in sent[1]["body"]
    assert await ledger(client, account_id) == before
