"""In-process fakes for the pipeline: a scripted upstream (per deployment: replies, stream
chunks, transport errors, hangs) and an in-memory store that records every money step."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from faregate.billing.store import HoldTicket, Store
from faregate.billing.types import KeyRecord, Settlement
from faregate.config import Config, Timeouts
from faregate.errors import FailureClass, UpstreamError
from faregate.metrics import Metrics
from faregate.pipeline.cache import MemoryCache
from faregate.pipeline.services import Services
from faregate.providers.base import Credentials, UpstreamRequest
from faregate.routing.balancer import Balancer
from faregate.routing.catalog import build_catalog
from faregate.upstream.base import Reply

# -- the upstream ---------------------------------------------------------------------------


@dataclass
class Script:
    """One scripted upstream answer. `raises`: a transport failure instead of any reply;
    `hang`: no answer at all (until cancelled); `chunks`: a stream's body, broken by
    `break_after` chunks with a transport failure when set."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    raises: UpstreamError | None = None
    hang: bool = False
    break_after: int | None = None


def reply(status: int, body: dict[str, Any] | bytes) -> Script:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Script(status=status, body=raw)


def transport_error(message: str = "connection refused") -> Script:
    return Script(raises=UpstreamError(FailureClass.TRANSIENT, message))


class FakeStream:
    def __init__(self, script: Script) -> None:
        self.status = script.status
        self.headers: dict[str, str] = dict(script.headers)
        self._script = script
        self.closed = False
        self.released = False  # done with after the content ended (the connection reusable)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            for i, chunk in enumerate(self._script.chunks):
                if self._script.break_after is not None and i >= self._script.break_after:
                    raise UpstreamError(FailureClass.TIMEOUT, "the provider went silent")
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        self.released = self.closed = True


@dataclass
class Sent:
    base_url: str
    path: str
    body: dict[str, Any]
    stream: bool


class FakeUpstream:
    """Answers each deployment (by its provider's base URL) from its script, in order; the
    last answer repeats. Records every request and every stream it opened."""

    def __init__(self, scripts: dict[str, list[Script]]) -> None:
        self.scripts = {url.rstrip("/"): list(answers) for url, answers in scripts.items()}
        self.sent: list[Sent] = []
        self.streams: list[FakeStream] = []
        self.arrived = asyncio.Event()  # set by the first request

    async def _next(self, creds: Credentials, req: UpstreamRequest, stream: bool) -> Script:
        self.sent.append(Sent(creds.base_url, req.path, orjson.loads(req.body), stream))
        self.arrived.set()
        answers = self.scripts[creds.base_url]
        script = answers.pop(0) if len(answers) > 1 else answers[0]
        if script.hang:
            await asyncio.Event().wait()
        if script.raises is not None:
            raise script.raises
        return script

    async def send(
        self, creds: Credentials, req: UpstreamRequest, t: Timeouts, *, method: str = "POST"
    ) -> Reply:
        script = await self._next(creds, req, False)
        return Reply(script.status, script.headers, script.body)

    async def stream(
        self, creds: Credentials, req: UpstreamRequest, t: Timeouts, *, method: str = "POST"
    ) -> FakeStream | Reply:
        script = await self._next(creds, req, True)
        if script.status >= 400:
            return Reply(script.status, script.headers, script.body)
        opened = FakeStream(script)
        self.streams.append(opened)
        return opened

    async def close(self) -> None:
        return None


# -- the store ------------------------------------------------------------------------------


class FakeStore:
    """Holds, settlements and releases of one account, in memory; every hold is durable."""

    def __init__(self, balance: int) -> None:
        self.balance = balance
        self.holds: dict[str, int] = {}
        self.settled: dict[str, Settlement] = {}
        self.released: dict[str, str] = {}
        self._ids = itertools.count(1)

    async def hold(
        self, *, account_id: str, key_id: str | None, amount: int, model: str, **_: Any
    ) -> HoldTicket | None:
        if amount > self.balance:
            return None
        self.balance -= amount
        ticket = HoldTicket(f"hold_{next(self._ids)}", account_id, key_id, amount, model)
        self.holds[ticket.id] = amount
        return ticket

    def _open(self, ticket: HoldTicket) -> bool:
        return ticket.id not in self.settled and ticket.id not in self.released

    async def settle(self, ticket: HoldTicket, settlement: Settlement) -> bool:
        assert self._open(ticket), f"{ticket.id} closed twice"
        self.settled[ticket.id] = settlement
        self.balance += ticket.amount - settlement.cost
        return True

    async def release(self, ticket: HoldTicket, note: str) -> bool:
        assert self._open(ticket), f"{ticket.id} closed twice"
        self.released[ticket.id] = note
        self.balance += ticket.amount
        return True

    @property
    def open_holds(self) -> list[str]:
        return [h for h in self.holds if h not in self.settled and h not in self.released]


# -- the services ---------------------------------------------------------------------------


KEY = KeyRecord(
    id="key_1", account_id="acct_1", allowed_models=None, expires_at=None, revoked=False
)


def services(config: dict[str, Any], upstream: FakeUpstream, store: FakeStore) -> Services:
    """The pipeline's services for `config` (a config mapping), on the fakes; what the
    pipeline does not use is left out."""
    cfg = Config.model_validate(config)
    metrics = Metrics()
    unused: Any = None
    return Services(
        config=cfg,
        store=cast(Store, store),
        keys=unused,
        hasher=unused,
        catalog=build_catalog(cfg),
        balancer=Balancer(cfg.routing, metrics),
        metrics=metrics,
        upstream=upstream,
        fetcher=unused,
        cache=MemoryCache(100),
        limiter=unused,
        usage=unused,
    )
