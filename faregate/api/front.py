"""The front door of every HTTP request: route, and for metered client routes authenticate,
check the key's restrictions, take a rate-limit lease, trace the request and log its usage;
render any error in the route's envelope; add the request id, rate-limit and CORS headers."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from faregate.api import access_log
from faregate.api.common import authenticate
from faregate.api.envelopes import render_error
from faregate.api.idempotency import HEADER, run_idempotent
from faregate.auth import restrictions
from faregate.billing.types import KeyRecord
from faregate.db.errors import storage_errors
from faregate.errors import (
    FaregateError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
)
from faregate.http.request import Request, Scope
from faregate.http.responses import Response, Send, StreamResponse
from faregate.http.router import Route, Router
from faregate.kinds import route_class
from faregate.limits.base import Lease
from faregate.observe import tracing
from faregate.pipeline.services import Services
from faregate.trace import Trace, current

log = logging.getLogger("faregate")

EXPOSED = (
    "x-request-id, request-id, x-faregate-cost, x-faregate-cost-usd, x-faregate-model, "
    "x-faregate-deployment, x-faregate-attempts, x-faregate-cache, x-faregate-ignored-fields, "
    "x-faregate-max-tokens-clamped, "
    "x-balancer-credits-used, x-balancer-cost-usd, x-balancer-model-used, idempotent-replayed, "
    "x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, "
    "x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, "
    "retry-after"
)


class FrontDoor:
    def __init__(self, router: Router, services: Services) -> None:
        self.router = router
        self.svc = services

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        route, params, other_method = self.router.match(method, path)
        request = Request(scope, receive, params)
        cors = self.svc.config.server.cors and (route is None or route.protocol != "admin")
        origin = request.headers.get("origin") if cors else None
        if method == "OPTIONS" and origin and other_method:
            await _preflight(request, origin, self.router.methods_for(path))(send, receive)
            return
        # The trace and the limits see the route's class (images, audio, ...), not its kind.
        trace = Trace(route_class(route.kind)) if route is not None and route.kind else None
        logged = access_log.enabled()
        started = trace.started if trace is not None else time.monotonic() if logged else 0.0
        token = current.set(trace)
        spans = tracing.backend()
        span = None
        if spans is not None and trace is not None and route is not None:
            span = spans.request(method, route.path, trace.request_id, trace.route)
        span_token = tracing.current.set(span)
        lease: Lease | None = None
        protocol = route.protocol if route else self.router.protocol_for(path)
        try:
            try:
                if route is None:
                    raise _no_route(self.router, method, path, other_method)
                if trace is not None:
                    if route.class_by_model:  # the handler admits once it knows the model
                        await self._identify(request, trace)
                    else:
                        lease = await self._admit(request, trace)
                response = await self._handle(route, request, protocol)
            except FaregateError as exc:
                response = render_error(protocol, exc)
            except storage_errors():
                log.exception("storage failure on %s", path)
                response = render_error(
                    protocol,
                    ServiceUnavailable("The gateway's database is unavailable.", retry_after=5),
                )
            except Exception:
                log.exception("unhandled error on %s", path)
                response = render_error(protocol, InternalError("An internal error occurred."))
            if lease is None:
                lease = request.lease
            _decorate(response, trace, lease, origin)
            try:
                await response(send, receive)
            finally:
                request.close()  # an uploaded form's temporary files
                if lease is not None:
                    lease.release()
                if span is not None and trace is not None:
                    span.end(
                        response.status, trace.model, trace.prompt_tokens, trace.completion_tokens
                    )
                if trace is not None and request.key is not None:
                    await self._account(trace, request.key, response.status)
                if logged:
                    self._log(request, response.status, trace, started)
        finally:
            tracing.current.reset(span_token)
            current.reset(token)

    def _log(self, request: Request, status: int, trace: Trace | None, started: float) -> None:
        """The request's access-log line, once its response has ended."""
        trusted = restrictions.networks(tuple(self.svc.config.server.trusted_proxies))
        address = restrictions.client_address(
            request.client_host, request.headers.get("x-forwarded-for"), trusted
        )
        access_log.write(
            access_log.entry(
                method=request.method,
                path=request.path,
                status=status,
                trace=trace,
                started=started,
                client_ip=address,
            )
        )

    async def _admit(self, request: Request, trace: Trace) -> Lease:
        """Who calls (401), from where and when (403), and within which limits (429)."""
        key = await self._identify(request, trace)
        return await self.svc.limiter.acquire(key, trace.route)

    async def _identify(self, request: Request, trace: Trace) -> KeyRecord:
        """Who calls (401), from where and when (403)."""
        key = await authenticate(self.svc, request)  # the key's restrictions included
        trace.key_id, trace.account_id = key.id, key.account_id
        return key

    async def _handle(
        self, route: Route, request: Request, protocol: str
    ) -> Response | StreamResponse:
        if route.kind is not None and request.method == "POST" and HEADER in request.headers:
            return await run_idempotent(self.svc, request, protocol, route.handler)
        return await route.handler(request)

    async def _account(self, trace: Trace, key: KeyRecord, status: int) -> None:
        """After the response has ended: tokens against the limits, a row in the usage log."""
        trace.finish(status)
        tokens = trace.prompt_tokens + trace.completion_tokens
        if tokens:
            with contextlib.suppress(Exception):
                await self.svc.limiter.record_tokens(key, trace.route, tokens)
        if trace.cost:
            self.svc.metrics.charged(trace.model or "unknown", trace.cost)
        self.svc.usage.record(trace)


def _no_route(router: Router, method: str, path: str, other_method: bool) -> FaregateError:
    if other_method:
        err: FaregateError = MethodNotAllowed(f"{method} is not allowed on {path}.")
        err.headers["allow"] = ", ".join(router.methods_for(path))
        return err
    return NotFound(f"No route for {method} {path}.", code="unknown_route")


def _decorate(
    response: Response | StreamResponse,
    trace: Trace | None,
    lease: Lease | None,
    origin: str | None,
) -> None:
    extra: list[tuple[bytes, bytes]] = []
    present = {name for name, _ in response.headers}
    if trace is not None and b"x-request-id" not in present:
        extra.append((b"x-request-id", trace.request_id.encode()))
    if trace is not None and isinstance(response, Response) and b"x-faregate-cost" not in present:
        # Every whole reply of a metered route says what it cost, refusals included (nothing).
        cost = str(trace.cost).encode()
        extra += [(b"x-faregate-cost", cost), (b"x-balancer-credits-used", cost)]
    if lease is not None:
        extra += [(k.encode(), v.encode()) for k, v in lease.headers.items()]
    if origin:
        extra += [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-expose-headers", EXPOSED.encode()),
            (b"vary", b"Origin"),
        ]
    if extra:
        response.headers = [*response.headers, *extra]


def _preflight(request: Request, origin: str, methods: list[str]) -> Response:
    asked = request.headers.get("access-control-request-headers", "")
    return Response(
        b"",
        204,
        [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ", ".join(methods).encode()),
            (b"access-control-allow-headers", (asked or "authorization, content-type").encode()),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
        ],
    )
