"""Reading a request: a multipart/form-data body parsed as it arrives, under per-part caps."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from faregate.errors import BadRequest, PayloadTooLarge
from faregate.http.sniff import media_type

MIB = 1024 * 1024
SNIFF_BYTES = 64
"""The first bytes of a file part kept aside for content sniffing."""


class MalformedForm(BadRequest):
    """A body that is not the multipart/form-data it must be."""

    code = "invalid_multipart"


@dataclass(frozen=True, slots=True)
class FormLimits:
    max_body: int  # the whole body (`server.max_body_bytes`)
    max_part: int = 10 * MIB  # one file part (`server.max_part_bytes`)
    max_parts: int = 64  # parts in the body (`server.max_parts`)
    max_field: int = MIB  # one text field, held in memory
    max_name: int = 256  # bytes of a part's field name
    max_headers: int = 8 * 1024  # bytes of one part's headers
    spool: int = MIB  # a file part past this many bytes moves from memory to a temporary file


class UploadFile:
    """A file part: its declared name and type, its size, and its bytes in a spooled file."""

    __slots__ = ("declared_type", "file", "filename", "head", "name", "size")

    def __init__(self, name: str, filename: str, declared_type: str, spool: int) -> None:
        self.name = name
        self.filename = filename
        self.declared_type = declared_type
        # Open for as long as the request: `close` (Form.close, at the request's end) removes it.
        self.file: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=spool, prefix="faregate-upload-"
        )
        self.size = 0
        self.head = b""

    @property
    def content_type(self) -> str:
        """The type its first bytes show (png, wav, mp4, ...), else the declared one."""
        return media_type(self.declared_type, self.head)

    @property
    def on_disk(self) -> bool:
        return bool(getattr(self.file, "_rolled", False))

    async def read(self) -> bytes:
        """All of its bytes (from a worker thread once spooled to disk)."""
        self.file.seek(0)
        data = await asyncio.to_thread(self.file.read) if self.on_disk else self.file.read()
        self.file.seek(0)
        return data

    def close(self) -> None:
        self.file.close()


@dataclass(slots=True)
class Form:
    """Text fields and file parts in the order they came. A field sent several times keeps
    every value; `name` and `name[]` are read together."""

    items: list[tuple[str, str | UploadFile]] = field(default_factory=list)

    def _named(self, name: str) -> list[str | UploadFile]:
        return [v for k, v in self.items if k in (name, f"{name}[]")]

    def get(self, name: str) -> str | None:
        """The first text value of `name`."""
        return next((v for v in self._named(name) if isinstance(v, str)), None)

    def getall(self, name: str) -> list[str]:
        return [v for v in self._named(name) if isinstance(v, str)]

    def file(self, name: str) -> UploadFile | None:
        """The first file sent as `name`."""
        return next((v for v in self._named(name) if isinstance(v, UploadFile)), None)

    def files(self, name: str) -> list[UploadFile]:
        return [v for v in self._named(name) if isinstance(v, UploadFile)]

    def close(self) -> None:
        """Remove every temporary file."""
        for _, value in self.items:
            if isinstance(value, UploadFile):
                value.close()


@dataclass(slots=True)
class _Part:
    name: str
    upload: UploadFile | None  # None: a text field
    text: bytearray = field(default_factory=bytearray)
    pending: list[bytes] = field(default_factory=list)
    size: int = 0
    done: bool = False


class _Parser:
    """python-multipart's callbacks: they check the caps and queue data; `flush`, between two
    chunks of the body, writes the queued data where it goes (off the event loop once a file
    has spooled to disk)."""

    def __init__(self, boundary: bytes, limits: FormLimits) -> None:
        self.limits = limits
        self.form = Form()
        self.parts = 0
        self.ended = False
        self.current: _Part | None = None
        self.touched: list[_Part] = []
        self.headers: dict[str, str] = {}
        self.header_bytes = 0
        self.hname = bytearray()
        self.hvalue = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self.part_begin,
                "on_header_field": self.header_field,
                "on_header_value": self.header_value,
                "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished,
                "on_part_data": self.part_data,
                "on_part_end": self.part_end,
                "on_end": self.end,
            },
        )

    def write(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise MalformedForm(f"The multipart/form-data body is malformed: {exc}") from None

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_parts:
            raise PayloadTooLarge(f"The form has more than {self.limits.max_parts} parts.")
        self.headers, self.header_bytes = {}, 0
        self.hname.clear()
        self.hvalue.clear()

    def _header_bytes(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > self.limits.max_headers:
            raise PayloadTooLarge(
                f"Part {self.parts}'s headers are larger than the {self.limits.max_headers}-byte"
                " limit."
            )

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_bytes(end - start)
        self.hname += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_bytes(end - start)
        self.hvalue += data[start:end]

    def header_end(self) -> None:
        name = self.hname.decode("latin-1").strip().lower()
        self.headers[name] = self.hvalue.decode("latin-1").strip()
        self.hname.clear()
        self.hvalue.clear()

    def headers_finished(self) -> None:
        disposition, options = parse_options_header(self.headers.get("content-disposition"))
        raw_name = options.get(b"name")
        if disposition != b"form-data" or raw_name is None or not raw_name:
            raise MalformedForm(
                f"Part {self.parts} has no `Content-Disposition: form-data; name=...` header."
            )
        if len(raw_name) > self.limits.max_name:
            raise PayloadTooLarge(
                f"Part {self.parts}'s field name is longer than {self.limits.max_name} bytes."
            )
        name = _text(raw_name)
        raw_filename = options.get(b"filename")
        upload = None
        if raw_filename is not None:
            declared = self.headers.get("content-type") or "application/octet-stream"
            upload = UploadFile(name, _text(raw_filename), declared, self.limits.spool)
        self.current = _Part(name, upload)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        if part is None or end <= start:
            return
        part.size += end - start
        cap = self.limits.max_field if part.upload is None else self.limits.max_part
        if part.size > cap:
            raise PayloadTooLarge(
                f"Part {part.name!r} is larger than the {cap}-byte limit.", param=part.name
            )
        part.pending.append(data[start:end])
        if len(part.pending) == 1:
            self.touched.append(part)

    def part_end(self) -> None:
        part = self.current
        if part is None:
            return
        part.done = True
        if not part.pending:
            self.touched.append(part)
        self.current = None

    def end(self) -> None:
        self.ended = True

    async def flush(self) -> None:
        """Write what the last chunk brought; add the parts it ended to the form."""
        touched, self.touched = self.touched, []
        for part in touched:
            data = b"".join(part.pending)
            part.pending.clear()
            upload = part.upload
            if upload is None:
                part.text += data
            elif data:
                if len(upload.head) < SNIFF_BYTES:
                    upload.head = (upload.head + data)[:SNIFF_BYTES]
                upload.size += len(data)
                if upload.size > self.limits.spool:  # on disk, or about to roll over to it
                    await asyncio.to_thread(upload.file.write, data)
                else:
                    upload.file.write(data)
            if part.done:
                self.form.items.append((part.name, self._value(part)))

    def _value(self, part: _Part) -> str | UploadFile:
        if part.upload is not None:
            part.upload.file.seek(0)
            return part.upload
        try:
            return part.text.decode()
        except UnicodeDecodeError:
            message = f"Field {part.name!r} is not UTF-8 text."
            raise MalformedForm(message, param=part.name) from None

    def discard(self) -> None:
        """Close every file, the ones of unfinished parts included."""
        self.form.close()
        for part in (self.current, *self.touched):
            if part is not None and part.upload is not None:
                part.upload.close()


def _text(raw: bytes) -> str:
    """A header parameter: UTF-8 as browsers send it, else Latin-1."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def boundary_of(content_type: str) -> bytes:
    """The boundary of a multipart/form-data content type; 400 for any other type or none."""
    mime, options = parse_options_header(content_type)
    if mime != b"multipart/form-data":
        shown = content_type or "none"
        raise MalformedForm(f"Expected a multipart/form-data body; the content type is {shown}.")
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedForm("The multipart/form-data content type has no boundary.")
    if len(boundary) > 70 or any(c < 0x20 or c > 0x7E for c in boundary):
        raise MalformedForm("The multipart/form-data boundary is not a valid boundary.")
    return boundary


async def parse_form(
    content_type: str, body: AsyncGenerator[bytes, None], limits: FormLimits
) -> Form:
    """The form in `body`, parsed chunk by chunk as it arrives; on any error every temporary
    file is removed before the error leaves."""
    parser = _Parser(boundary_of(content_type), limits)
    try:
        async with contextlib.aclosing(body):
            async for chunk in body:
                parser.write(chunk)
                await parser.flush()
        if not parser.ended:
            raise MalformedForm("The multipart/form-data body ended before its closing boundary.")
    except BaseException:
        parser.discard()
        raise
    return parser.form


__all__ = ["Form", "FormLimits", "MalformedForm", "UploadFile", "boundary_of", "parse_form"]
