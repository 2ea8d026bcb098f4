"""What the pipeline asks of the upstream client: a whole reply, or a stream of chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from faregate.config import Timeouts
from faregate.providers.base import Credentials, UpstreamRequest


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class UpstreamStream(Protocol):
    """An open upstream response read chunk by chunk. `close` ends it where it is (the
    provider sees the connection go, and stops); `release`, once the content has ended, lets
    the connection be reused when the last bytes of the body arrive. Either is safe to call
    twice, and after the other."""

    status: int
    headers: dict[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...

    def release(self) -> None: ...


class UpstreamClient(Protocol):
    """The upstream calls the pipeline makes (`upstream.client.Upstream`; a scripted fake in
    tests). Transport failures raise `UpstreamError`; error statuses come back as a `Reply`."""

    async def send(
        self, creds: Credentials, req: UpstreamRequest, t: Timeouts, *, method: str = "POST"
    ) -> Reply: ...

    async def stream(
        self, creds: Credentials, req: UpstreamRequest, t: Timeouts, *, method: str = "POST"
    ) -> UpstreamStream | Reply: ...

    async def close(self) -> None: ...
