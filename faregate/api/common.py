"""What every client route shares: the caller's key, the JSON or form body, the cost headers."""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson

from faregate.auth import geo, restrictions
from faregate.billing.pricing import to_usd, usd_decimal
from faregate.billing.types import KeyRecord
from faregate.errors import ValidationFailed
from faregate.http.multipart import Form, FormLimits
from faregate.http.request import Request
from faregate.kinds import Kind, route_class
from faregate.pipeline.attempts import trail_header
from faregate.pipeline.services import Services
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import Deployment
from faregate.trace import current as current_trace
from faregate.trace import request_id as trace_request_id


def api_key_of(req: Request) -> str | None:
    """The key from `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` or `?key=`."""
    headers = req.headers
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or req.query.get("key")


def caller_address(svc: Services, req: Request) -> str:
    """The caller's address: the peer, or behind `server.trusted_proxies` the nearest
    untrusted `X-Forwarded-For` hop."""
    trusted = restrictions.networks(tuple(svc.config.server.trusted_proxies))
    return restrictions.client_address(req.client_host, req.headers.get("x-forwarded-for"), trusted)


async def authenticate(svc: Services, req: Request) -> KeyRecord:
    """The caller's key, checked against its restrictions (where and when it may be used):
    once per request, then kept on the request."""
    if req.key is None:
        key = await svc.keys.authenticate(api_key_of(req))
        if key.restrictions or key.account_restrictions:
            _check_restrictions(svc, req, key)
        req.key = key
    return req.key


async def admit_class(svc: Services, req: Request, kind: Kind) -> None:
    """Take the limits of `kind`'s plan class for a route that serves several kinds (its
    model decides, once the body is read); the app releases the lease with the response."""
    trace = current_trace.get()
    if trace is None or req.lease is not None:
        return
    key = await authenticate(svc, req)
    trace.route = route_class(kind)
    req.lease = await svc.limiter.acquire(key, trace.route)


def _check_restrictions(svc: Services, req: Request, key: KeyRecord) -> None:
    """The account's and then the key's restrictions; the country is looked up only when one
    of them limits countries."""
    headers = req.headers
    trusted = restrictions.networks(tuple(svc.config.server.trusted_proxies))
    address = restrictions.client_address(req.client_host, headers.get("x-forwarded-for"), trusted)
    country: list[str | None] = []
    for doc in (key.account_restrictions, key.restrictions):
        if not doc:
            continue
        restrictions.check(doc, address=address, origin=headers.get("origin"))
        countries = doc.get("countries")
        if countries:
            if not country:
                header = svc.config.geo.country_header
                country.append(
                    geo.caller_country(
                        peer=req.client_host,
                        address=address,
                        header_value=headers.get(header.lower()) if header else None,
                        trusted=trusted,
                        lookup=svc.countries,
                    )
                )
            restrictions.check_country(countries, country[0])


async def json_body(svc: Services, req: Request) -> dict[str, Any]:
    """The body as a JSON object: 413 past the size cap, 422 when it is not a JSON object."""
    raw = await req.body(svc.config.server.max_body_bytes)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(
            f"The request body is not valid JSON: {exc}.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.", code="invalid_json")
    return data


async def form_body(svc: Services, req: Request) -> Form:
    """The body as a multipart/form-data form under the server's caps: 400 when it is not
    one, 413 past a cap (naming the part). Its files are removed when the request ends."""
    server = svc.config.server
    limits = FormLimits(
        max_body=server.max_body_bytes, max_part=server.max_part_bytes, max_parts=server.max_parts
    )
    return await req.form(limits)


def request_id() -> str:
    """The id of the request being served (the same in every header, log row and body)."""
    return trace_request_id()


def cost_headers(svc: Services, request_id: str, model: str, cost: int | None) -> dict[str, str]:
    """The model that served and, once known, the cost: ours and the `X-Balancer-*` names."""
    headers = {
        "x-request-id": request_id,
        "x-faregate-model": model,
        "x-balancer-model-used": model,
    }
    if cost is not None:
        usd = to_usd(cost, svc.config.billing.micro_credits_per_usd)
        headers["x-faregate-cost"] = str(cost)
        headers["x-faregate-cost-usd"] = usd
        headers["x-balancer-credits-used"] = str(cost)
        headers["x-balancer-cost-usd"] = usd
    return headers


def usd_number(svc: Services, cost: int) -> orjson.Fragment:
    """The cost in US dollars as an exact JSON number (`0.000123`, never float noise)."""
    return orjson.Fragment(usd_decimal(cost, svc.config.billing.micro_credits_per_usd))


def usage_cost(svc: Services, cost: int) -> dict[str, Any]:
    """The cost fields of a `usage` object: `cost` in US dollars (the unit clients read it
    in) and the exact integer as `cost_micro_credits`."""
    return {"cost": usd_number(svc, cost), "cost_micro_credits": cost}


class _Routed(Protocol):
    @property
    def deployment(self) -> Deployment | None: ...

    @property
    def attempts(self) -> list[Attempt]: ...


def routing_headers(done: _Routed) -> dict[str, str]:
    """Which deployment served and every deployment tried with its outcome, or that the
    response cache answered."""
    if done.deployment is None:
        return {"x-faregate-cache": "hit"}
    return {
        "x-faregate-deployment": done.deployment.name,
        "x-faregate-attempts": trail_header(done.attempts),
    }


METADATA_HEADERS = ("x-balancer-metadata", "x-faregate-metadata")


def wants_metadata(req: Request) -> bool:
    """Whether the client opted in to the `_balancer` response metadata."""
    return any(req.headers.get(h, "").lower() in ("1", "true", "yes") for h in METADATA_HEADERS)


def balancer_metadata(
    svc: Services, model: str, cost: int, usage: Any, cached: bool
) -> dict[str, Any]:
    """The opt-in response metadata: what the request cost and which model served it."""
    trace = current_trace.get()
    latency = int((time.monotonic() - trace.started) * 1000) if trace is not None else 0
    return {
        "credits_used": cost,
        "cost_usd": usd_number(svc, cost),
        "model_used": model,
        "input_tokens": getattr(usage, "prompt_tokens", 0),
        "output_tokens": getattr(usage, "completion_tokens", 0),
        "latency_ms": latency,
        "cached": cached,
        **({"units": dict(usage.units)} if getattr(usage, "units", ()) else {}),
    }
