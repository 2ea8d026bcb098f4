"""Multipart/form-data bodies: fields, repeated fields and files parsed as the body arrives;
big files spooled to disk and removed afterwards; every cap and every malformed body refused
with its own error before the handler sees anything."""

from __future__ import annotations

import os
from typing import Any

import pytest

from faregate.errors import FaregateError, PayloadTooLarge
from faregate.http.multipart import Form, FormLimits, MalformedForm, UploadFile
from faregate.http.request import Request

BOUNDARY = "----faregate-test-boundary"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20


def field(name: str, value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )


def file(name: str, filename: str, data: bytes, ctype: str = "application/octet-stream") -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        f"Content-Type: {ctype}\r\n\r\n"
    )
    return head.encode() + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def request(raw: bytes, *, chunk: int = 7, ctype: str | None = None, cut: bool = False) -> Request:
    """A request whose body arrives in `chunk`-byte pieces (`cut`: the client leaves first)."""
    content_type = f"multipart/form-data; boundary={BOUNDARY}" if ctype is None else ctype
    pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)] or [b""]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": p, "more_body": cut or i < len(pieces) - 1}
        for i, p in enumerate(pieces)
    ]
    if cut:
        messages.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "headers": [(b"content-type", content_type.encode())],
    }
    return Request(scope, receive)


def exists(path: str) -> bool:
    return os.path.exists(path)


LIMITS = FormLimits(max_body=1 << 20, max_part=64 * 1024, max_parts=8, spool=1024)


async def parse(raw: bytes, limits: FormLimits = LIMITS, **kw: Any) -> Form:
    return await request(raw, **kw).form(limits)


async def test_fields_and_repeated_fields_keep_every_value() -> None:
    form = await parse(
        body(
            field("model", "gpt-image-1"),
            field("timestamp_granularities[]", "word"),
            field("timestamp_granularities[]", "segment"),
            field("prompt", "un chat sur la lune 🌙"),
        )
    )
    assert form.get("model") == "gpt-image-1"
    assert form.getall("timestamp_granularities") == ["word", "segment"]
    assert form.get("prompt") == "un chat sur la lune 🌙"
    assert form.get("missing") is None
    assert form.file("model") is None


async def test_several_files_in_order_with_their_names_and_types() -> None:
    form = await parse(
        body(
            file("image[]", "a.png", PNG, "image/png"),
            file("image", "b.bin", WAV),  # declared generic: the bytes tell
            field("prompt", "edit"),
        ),
        chunk=5,
    )
    files = form.files("image")
    assert [f.filename for f in files] == ["a.png", "b.bin"]
    assert [await f.read() for f in files] == [PNG, WAV]
    assert [f.content_type for f in files] == ["image/png", "audio/wav"]
    assert files[1].declared_type == "application/octet-stream"
    assert form.get("prompt") == "edit"
    form.close()


async def test_a_file_past_the_threshold_is_spooled_to_disk_and_removed_afterwards() -> None:
    big = os.urandom(10_000)
    req = request(body(file("file", "speech.wav", WAV + big), field("model", "whisper-1")))
    form = await req.form(LIMITS)
    upload = form.file("file")
    assert upload is not None
    assert upload.on_disk
    assert upload.size == len(WAV) + len(big)
    assert await upload.read() == WAV + big
    path = upload.file.name
    assert exists(path)
    small = (await parse(body(file("file", "a.png", PNG)))).file("file")
    assert small is not None
    assert not small.on_disk
    small.close()
    req.close()
    assert not exists(path)


async def test_the_form_is_read_once_then_kept() -> None:
    req = request(body(field("a", "1")))
    first = await req.form(LIMITS)
    assert await req.form(LIMITS) is first


async def test_a_body_read_whole_first_still_parses() -> None:
    """The idempotency check hashes the body before the handler reads the form."""
    raw = body(field("a", "1"), file("f", "x.png", PNG))
    req = request(raw)
    assert await req.body(1 << 20) == raw
    form = await req.form(LIMITS)
    assert form.get("a") == "1"
    upload = form.file("f")
    assert upload is not None
    assert await upload.read() == PNG
    req.close()


async def test_an_empty_filename_is_still_a_file_part() -> None:
    form = await parse(body(file("file", "", b"")))
    upload = form.file("file")
    assert upload is not None
    assert (upload.filename, upload.size) == ("", 0)
    form.close()


@pytest.mark.parametrize(
    ("raw", "limits", "match"),
    [
        (body(file("image", "a.png", PNG * 100)), FormLimits(1 << 20, max_part=1000), "image"),
        (body(field("prompt", "x" * 300)), FormLimits(1 << 20, max_field=200), "prompt"),
        (body(*(field(f"f{i}", "v") for i in range(9))), LIMITS, "more than 8 parts"),
        (body(field("n" * 40, "v")), FormLimits(1 << 20, max_name=32), "field name"),
        (body(field("a", "v")), FormLimits(1 << 20, max_headers=20), "headers"),
        (body(field("a", "v" * 5000)), FormLimits(max_body=2048), "2048-byte"),
    ],
    ids=["file-part", "text-field", "part-count", "field-name", "part-headers", "whole-body"],
)
async def test_each_cap_answers_413(raw: bytes, limits: FormLimits, match: str) -> None:
    with pytest.raises(PayloadTooLarge, match=match) as info:
        await parse(raw, limits)
    assert info.value.status == 413
    assert info.value.code == "payload_too_large"


async def test_a_part_over_its_cap_names_the_part() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        await parse(body(file("image", "a.png", b"x" * 2000)), FormLimits(1 << 20, max_part=1000))
    assert info.value.param == "image"


@pytest.mark.parametrize(
    ("raw", "ctype", "match"),
    [
        (body(field("a", "1")), "multipart/form-data", "no boundary"),
        (body(field("a", "1")), "application/json", "content type is application/json"),
        (body(field("a", "1")), "", "content type is none"),
        (body(field("a", "1")), "multipart/form-data; boundary=" + "b" * 80, "not a valid"),
        (b"this is not multipart at all", None, "malformed"),
        (
            f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            None,
            "Content-Disposition",
        ),
        (body(field("a", b"\xff\xfe")), None, "not UTF-8"),
    ],
    ids=["no-boundary", "json", "no-type", "bad-boundary", "garbage", "no-name", "not-utf8"],
)
async def test_malformed_bodies_answer_400(raw: bytes, ctype: str | None, match: str) -> None:
    with pytest.raises(MalformedForm, match=match) as info:
        await parse(raw, ctype=ctype)
    assert (info.value.status, info.value.code) == (400, "invalid_multipart")


async def test_a_body_cut_short_is_refused() -> None:
    raw = body(field("a", "1"), file("f", "x.png", PNG))
    with pytest.raises(MalformedForm, match="ended before its closing boundary"):
        await parse(raw[: len(raw) // 2], cut=True)


async def test_no_temporary_file_outlives_a_refused_body(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[UploadFile] = []
    real_init = UploadFile.__init__

    def spy(self: UploadFile, *args: Any) -> None:
        real_init(self, *args)
        opened.append(self)

    monkeypatch.setattr(UploadFile, "__init__", spy)
    big = os.urandom(5000)
    raw = body(file("a", "a.bin", big), file("b", "b.bin", big), file("c", "c.bin", big * 20))
    with pytest.raises(FaregateError):
        await parse(raw, FormLimits(1 << 20, max_part=50_000, spool=1024), chunk=4096)
    assert len(opened) == 3
    assert all(u.file.closed for u in opened)
