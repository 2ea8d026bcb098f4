"""Images on the runner with a scripted upstream: the hold on `n` images at the dearest price
of the chain, the images delivered as the units settled, fallback, release on failure."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image
from pipeline.fakes import KEY, FakeStore, FakeUpstream, reply, services

from faregate.errors import BadRequest, FaregateError, ServiceUnavailable, UpstreamFailed
from faregate.pipeline.images import MAX_OUTPUT_TOKENS_PER_IMAGE, generate
from faregate.providers.image_types import ImageCall

A, B = "http://a.test/v1", "http://b.test/v1"
BALANCE = 10_000_000
CONFIG: dict[str, Any] = {
    "routing": {"wait_for_recovery_seconds": 0},
    "providers": {"a": {"base_url": A}, "b": {"base_url": B}},
    "models": {
        "img": {
            "kind": "images",
            "provider": "a",
            "upstream": "dall-e-3",
            "price": {"image": 40_000, "images": {"1024x1024/hd": 80_000, "1792x1024": 90_000}},
            "fallbacks": ["dear"],
        },
        "dear": {"kind": "images", "provider": "b", "price": {"image": 100_000}},
        "sized": {"kind": "images", "provider": "a", "price": {"images": {"1024x1024": 1}}},
        "tok": {
            "kind": "images",
            "provider": "a",
            "upstream": "gpt-image-1",
            "price": {"input": 1_000_000, "output": 2_000_000},
        },
    },
}


def png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def images_body(count: int, usage: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"created": 1, "data": [{"b64_json": png()} for _ in range(count)]}
    if usage is not None:
        body["usage"] = usage
    return body


def setup(**scripts: Any) -> tuple[Any, FakeUpstream, FakeStore]:
    urls = {"a": A, "b": B}
    upstream = FakeUpstream({urls[name]: answers for name, answers in scripts.items()})
    store = FakeStore(BALANCE)
    return services(CONFIG, upstream, store), upstream, store


def call(model: str = "img", n: int = 1, **fields: Any) -> ImageCall:
    return ImageCall(model=model, prompt="a cat", n=n, request_id="req_1", **fields)


async def test_hold_is_n_images_at_the_dearest_model_and_settle_the_delivered() -> None:
    svc, upstream, store = setup(a=[reply(200, images_body(2))])
    done = await generate(svc, KEY, call(n=3))
    [(hold_id, amount)] = store.holds.items()
    assert amount == 3 * 100_000  # the fallback is dearer
    settled = store.settled[hold_id]
    assert (settled.cost, settled.units) == (2 * 40_000, (("images", 2),))
    assert done.cost == 80_000 and len(done.result.images) == 2
    assert upstream.sent[0].body["response_format"] == "b64_json"
    assert upstream.sent[0].body["n"] == 3


async def test_variants_price_size_and_quality() -> None:
    svc, _, _store = setup(a=[reply(200, images_body(1))])
    done = await generate(svc, KEY, call(size="1024x1024", quality="hd"))
    assert done.cost == 80_000
    assert done.usage.units == (("images:1024x1024/hd", 1),)


async def test_a_size_without_a_price_is_refused_before_the_hold() -> None:
    svc, upstream, store = setup()
    with pytest.raises(BadRequest) as err:
        await generate(svc, KEY, call("sized", size="512x512"))
    assert err.value.param == "size"
    assert not store.holds and not upstream.sent


async def test_token_priced_models_bill_the_reported_tokens() -> None:
    usage = {"input_tokens": 10, "output_tokens": 272, "total_tokens": 282}
    svc, upstream, store = setup(a=[reply(200, images_body(1, usage))])
    done = await generate(svc, KEY, call("tok"))
    [(_, amount)] = store.holds.items()
    assert amount == len(b"a cat") + MAX_OUTPUT_TOKENS_PER_IMAGE * 2
    assert done.cost == 10 + 272 * 2 and done.usage.units == ()
    assert "response_format" not in upstream.sent[0].body  # GPT image models answer base64


async def test_malformed_images_fall_back_and_failures_release() -> None:
    bad = {"created": 1, "data": [{"b64_json": base64.b64encode(b"\x89PNG\r\n\x1a\nxx").decode()}]}
    svc, upstream, _ = setup(a=[reply(200, bad)], b=[reply(200, images_body(1))])
    done = await generate(svc, KEY, call())
    assert done.model == "dear" and done.cost == 100_000
    assert [s.base_url for s in upstream.sent] == [A, B]
    svc, _upstream, store = setup(a=[reply(500, b"down")] * 3, b=[reply(500, b"down")] * 3)
    with pytest.raises(FaregateError) as err:
        await generate(svc, KEY, call())
    assert isinstance(err.value, UpstreamFailed)
    assert store.balance == BALANCE and len(store.released) == 1 and not store.settled


async def test_finish_runs_before_the_settlement_and_its_failure_releases() -> None:
    svc, _, store = setup(a=[reply(200, images_body(2))])
    seen: list[int] = []

    async def finish(result: Any) -> None:
        seen.append(len(result.images))
        assert not store.settled  # the images are stored before anything is charged

    done = await generate(svc, KEY, call(n=2), finish)
    assert seen == [2] and done.cost == 80_000

    svc, _, store = setup(a=[reply(200, images_body(1))])

    async def broken(result: Any) -> None:
        raise ServiceUnavailable("The media store could not keep the image.")

    with pytest.raises(ServiceUnavailable):
        await generate(svc, KEY, call(), broken)
    assert store.balance == BALANCE and len(store.released) == 1 and not store.settled
