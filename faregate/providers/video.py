"""What a video upstream adapter provides: submit a generation, poll it, name its files."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest, reply_object

Role = Literal["first_frame", "last_frame", "reference_image", "reference_video", "reference_audio"]
"""What an input file is to the generation."""

Phase = Literal["queued", "running", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class InputFile:
    """A file the client sent with the job (already checked by the surface)."""

    role: Role
    content_type: str
    data: bytes

    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"


@dataclass(slots=True)
class VideoCall:
    """One video generation as every surface asks for it."""

    model: str
    prompt: str
    seconds: int
    request_id: str
    resolution: str | None = None  # "720p", "1080p"...
    size: str | None = None  # "1280x720"
    ratio: str | None = None  # "16:9"
    negative_prompt: str | None = None
    off_peak: bool = False
    files: list[InputFile] = field(default_factory=list)

    @property
    def variant(self) -> str:
        """The price variant of its seconds: the size when given, else the resolution."""
        return self.size or self.resolution or ""

    def stored(self) -> dict[str, Any]:
        """What the job row keeps of the call (never the files)."""
        return {
            "prompt": self.prompt,
            "seconds": self.seconds,
            "resolution": self.resolution,
            "size": self.size,
            "ratio": self.ratio,
            "negative_prompt": self.negative_prompt,
            "off_peak": self.off_peak,
            "files": [f.role for f in self.files],
        }


@dataclass(frozen=True, slots=True)
class Asset:
    """A finished file at the upstream: a path under the provider's base URL (fetched with
    its credentials) or an absolute URL (fetched without them)."""

    ref: str
    absolute: bool = False


@dataclass(frozen=True, slots=True)
class VideoStatus:
    """One poll's answer, in the gateway's terms."""

    phase: Phase
    progress: int = 0
    seconds: float | None = None  # what the upstream says it produced
    video: Asset | None = None
    cover: Asset | None = None
    error: str | None = None


class VideoProtocol(Protocol):
    """An upstream video wire protocol."""

    name: str

    def submit_request(
        self, call: VideoCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest: ...

    def parse_submit(self, body: bytes) -> str:
        """The upstream's id of the new generation."""
        ...

    def poll_request(self, upstream_id: str, creds: Credentials) -> UpstreamRequest: ...

    def parse_poll(self, body: bytes) -> VideoStatus: ...

    def classify_error(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> UpstreamError: ...

    def auth_headers(self, creds: Credentials) -> dict[str, str]:
        """The headers that authenticate a download from the provider itself."""
        ...

    def unsupported(self, call: VideoCall) -> str | None:
        """Why this protocol cannot carry the call's inputs, or None when it can."""
        ...


def count(call: VideoCall, *roles: str) -> int:
    """How many of the call's files have one of `roles`."""
    return sum(1 for f in call.files if f.role in roles)


def malformed(what: str) -> UpstreamError:
    """A reply that does not have the protocol's shape: transient, polled again later."""
    return UpstreamError(FailureClass.TRANSIENT, f"the provider returned {what}", status=200)


def json_object(body: bytes) -> dict[str, Any]:
    """A reply's JSON object (a transient error, polled again later, when it is not one)."""
    return reply_object(body, lambda _: True)


def download(asset: Asset, creds: Credentials, auth: dict[str, str]) -> tuple[Credentials, str]:
    """Where to fetch `asset`: (credentials whose base URL is the file's origin, path). A
    file on the provider's own origin is fetched with its key; any other origin without."""
    own = urlsplit(creds.base_url)
    if not asset.absolute:
        return _keyed(creds, creds.base_url, auth), asset.ref
    parts = urlsplit(asset.ref)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise malformed(f"a file URL that is not http(s): {asset.ref[:80]!r}")
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if (own.scheme, own.netloc) == (parts.scheme, parts.netloc):
        return _keyed(creds, origin, auth), path
    return Credentials(origin, None, {}, proxy=creds.proxy), path


def _keyed(creds: Credentials, base: str, auth: dict[str, str]) -> Credentials:
    """The provider's credentials on `base`, with the headers that authenticate a download."""
    return Credentials(
        base, creds.api_key, {**creds.headers, **auth}, ca_bundle=creds.ca_bundle, proxy=creds.proxy
    )


def multipart(
    fields: list[tuple[str, str]], files: list[tuple[str, InputFile]]
) -> tuple[str, bytes]:
    """A multipart/form-data body: (content type, bytes)."""
    boundary = "faregate-" + secrets.token_hex(16)
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for i, (name, f) in enumerate(files):
        ext = f.content_type.rpartition("/")[2] or "bin"
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}";'
            f' filename="input{i}.{ext}"\r\nContent-Type: {f.content_type}\r\n\r\n'
        ).encode()
        out += f.data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)
