"""Image generation and edits on the runner: the hold on `n` images at the dearest price of
the chain, the adapter's request and reply, and the images delivered as the units billed."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

from faregate import tokens
from faregate.billing.pricing import UnpricedUnit, worst_case
from faregate.billing.types import KeyRecord, Price, Units, Usage
from faregate.errors import BadRequest
from faregate.kinds import Kind
from faregate.pipeline import runner
from faregate.pipeline.services import Services
from faregate.providers.base import Adapter, Credentials, UpstreamRequest
from faregate.providers.image_types import ImageCall, ImageResult, ImagesProtocol
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import ModelEntry

Generated = runner.Done[ImageResult]

MAX_OUTPUT_TOKENS_PER_IMAGE = 8192
"""The output tokens one image may take, for the hold of token-priced image models."""

PROMPT_CAPS = {"dall-e-2": 1000, "dall-e-3": 4000}
MAX_PROMPT_CHARS = 32_000
"""The prompt's length in characters: the upstream model's documented cap, else this."""


def prompt_cap(entry: ModelEntry) -> int:
    """The smallest documented prompt cap over the model's deployments."""
    caps = [
        next((cap for name, cap in PROMPT_CAPS.items() if d.upstream_model.startswith(name)), None)
        for d in entry.deployments
    ]
    return min([c for c in caps if c is not None], default=MAX_PROMPT_CHARS)


def per_image(price: Price) -> bool:
    """Whether the model is priced per image (else by its tokens)."""
    return price.image is not None or bool(price.images)


def _meter(call: ImageCall) -> str:
    variant = call.variant
    return f"images:{variant}" if variant else "images"


def _units(priced: bool, call: ImageCall, count: int) -> Units:
    return ((_meter(call), count),) if priced and count else ()


def _prompt_bound(call: ImageCall) -> int:
    inputs = len(call.images) + len(call.reference_images) + (call.mask is not None)
    return len(call.prompt.encode()) + inputs * tokens.IMAGE_TOKENS


def _worst(price: Price, call: ImageCall) -> int:
    output = call.n * MAX_OUTPUT_TOKENS_PER_IMAGE
    return worst_case(price, _prompt_bound(call), output, _units(per_image(price), call, call.n))


def _hold(chain: list[ModelEntry], call: ImageCall) -> int:
    """`n` images at the requested size and quality, and every token they may take, at the
    dearest model of the chain (a fallback without a price for them is skipped)."""
    amounts = [_worst(chain[0].price, call)]  # checked priced in `_check`
    for entry in chain[1:]:
        try:
            amounts.append(_worst(entry.price, call))
        except UnpricedUnit:
            continue
    return max(amounts)


def _check(entry: ModelEntry, call: ImageCall) -> None:
    cap = prompt_cap(entry)
    if len(call.prompt) > cap:
        raise BadRequest(
            f"'prompt' is {len(call.prompt)} characters; this model takes at most {cap}.",
            code="prompt_too_long",
            param="prompt",
        )
    for dep in entry.deployments:
        cast(ImagesProtocol, dep.adapter).check_image_call(call, dep.upstream_model)
    try:
        _worst(entry.price, call)
    except UnpricedUnit:
        param = "quality" if call.quality not in (None, "auto") else "size"
        raise BadRequest(
            f"The model '{entry.name}' has no price for {call.variant or 'its images'}.",
            code="unsupported_value",
            param=param,
        ) from None


async def _request(
    svc: Services, call: ImageCall, attempt: Attempt
) -> tuple[UpstreamRequest, Credentials]:
    dep = attempt.deployment
    creds = dep.creds(attempt.key)
    adapter = cast(ImagesProtocol, dep.adapter)
    call.per_image = per_image(attempt.model.price)  # attempts run one after another
    return adapter.build_image_request(call, dep.upstream_model, creds), creds


def _parse(adapter: Adapter, body: bytes, call: ImageCall) -> ImageResult:
    return cast(ImagesProtocol, adapter).parse_image_response(body, call)


def _usage(call: ImageCall, result: ImageResult) -> Usage:
    """The images delivered (for a model priced per image), and the tokens the upstream
    reported (else an estimate)."""
    units = _units(call.per_image, call, len(result.images))
    if result.usage is not None:
        u = result.usage
        return Usage(u.prompt_tokens, u.completion_tokens, units=units)
    if units:  # priced per image: no token count to make up
        return Usage(0, 0, units=units)
    prompt = tokens.count_text(call.prompt) + (_prompt_bound(call) - len(call.prompt.encode()))
    output = len(result.images) * tokens.IMAGE_TOKENS
    return Usage(prompt, output, estimated=True)


IMAGES: runner.KindSpec[ImageCall, ImageResult] = runner.KindSpec(
    kind=Kind.IMAGES,
    hold=_hold,
    request=_request,
    parse=_parse,
    usage=_usage,
    check=_check,
    screened=lambda call: [call.prompt],
    estimated_note="estimated: the provider reported no usage",
)


def generate(
    svc: Services,
    key: KeyRecord,
    call: ImageCall,
    finish: runner.Finish[ImageResult] | None = None,
) -> Awaitable[Generated]:
    """An image generation or edit: admit, hold, attempts with fallback, `finish` (the route
    stores or encodes the images: its failure releases the hold), settle (the runner's
    coroutine itself)."""
    return runner.run(svc, IMAGES, key, call, finish)
