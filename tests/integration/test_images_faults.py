"""Images: bad input refused before any hold, 402 before any upstream call, upstream faults
(429 and 500 storms, a hang, malformed images, partial replies) with the ledger exact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import Gateway, Sim, ledger_consistent, stop
from images_harness import DALLE_FLAT, DALLE_PRICES, GEMINI_FLAT, png_bytes, start_image_gateway

BALANCE = 10_000_000


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Image models behind one-second first-byte and idle timeouts."""
    g = start_image_gateway(
        sim.url, tmp_path_factory.mktemp("imgfaults"), timeouts={"first_byte": 1, "idle": 1}
    )
    yield g
    stop(g.proc)


@pytest.fixture(autouse=True)
def _fresh(gw: Gateway, sim: Sim) -> None:
    gw.reset_routing()
    sim.reset()


@pytest.fixture
def funded(gw: Gateway) -> tuple[str, str]:
    return gw.account(BALANCE)


def _post(gw: Gateway, key: str, body: dict[str, Any], path: str = "generations") -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/images/{path}",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def _untouched(gw: Gateway, account: str) -> None:
    """Nothing held, nothing charged, no ledger row."""
    state = gw.account_state(account)
    assert state["balance"] == BALANCE and state["open_holds"] == 0
    assert [r["kind"] for r in gw.ledger(account)] == ["grant"] or all(
        r["kind"] not in ("hold", "settle") for r in gw.ledger(account)
    )


def _upstream_calls(sim: Sim) -> int:
    stats = sim.stats()
    return sum(v for k, v in stats["by_route"].items() if "images" in k or "generate" in k)


CAT = {"model": "dall-e-3", "prompt": "a cat"}


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({**CAT, "size": "1000x1000"}, 400, "size"),
        ({**CAT, "n": 0}, 400, "n"),
        ({**CAT, "n": 11}, 400, "n"),
        ({**CAT, "n": "two"}, 422, "n"),
        ({**CAT, "prompt": "x" * 4001}, 400, "prompt"),
        ({**CAT, "quality": "ultra"}, 400, "quality"),
        ({**CAT, "response_format": "gif"}, 400, "response_format"),
        ({**CAT, "negative_prompt": "dogs"}, 400, "negative_prompt"),
        ({**CAT, "resolution": "4K"}, 400, "resolution"),
        ({**CAT, "aspect_ratio": "21:9"}, 400, "aspect_ratio"),
        ({**CAT, "reference_images": ["aGVsbG8="]}, 400, "reference_images[0]"),
        ({**CAT, "aspect_ratio": "1:1", "aspectRatio": "1:1"}, 422, "aspect_ratio,aspectRatio"),
        ({**CAT, "imageSize": "1K", "resolution": "1K"}, 422, "resolution,imageSize"),
        ({**CAT, "stream": True}, 400, "stream"),
        ({"model": "dall-e-3"}, 400, "prompt"),
        ({"model": "nano-banana-pro", "prompt": "x", "style": "vivid"}, 400, "style"),
        ({"model": "nano-banana-pro", "prompt": "x", "size": "512x512"}, 400, "size"),
        ({"model": "nano-banana-pro", "prompt": "x", "veonModelKey": "k"}, 400, "veon_model_key"),
        ({"model": "sim-small", "prompt": "x"}, 400, "model"),
    ],
)
def test_bad_input_is_refused_before_any_hold(
    gw: Gateway, sim: Sim, funded: tuple[str, str], body: dict[str, Any], status: int, param: str
) -> None:
    account, key = funded
    r = _post(gw, key, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"]
    assert r.headers["x-faregate-cost"] == "0"
    assert _upstream_calls(sim) == 0
    _untouched(gw, account)


def _edit(gw: Gateway, key: str, files: list[tuple[str, Any]], **fields: str) -> httpx.Response:
    data = {"model": "dall-e-3", "prompt": "add a hat", **fields}
    return httpx.post(
        gw.url + "/v1/images/edits",
        data=data,
        files=files,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_edits_refuse_what_is_not_an_image(gw: Gateway, sim: Sim, funded: tuple[str, str]) -> None:
    account, key = funded
    text = ("image", ("notes.png", b"just some text, not a picture", "image/png"))
    r = _edit(gw, key, [text])
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"
    truncated = ("image", ("cut.png", png_bytes()[:40], "image/png"))
    assert _edit(gw, key, [truncated]).json()["error"]["code"] == "invalid_image"
    jpeg_mask = [
        ("image", ("a.png", png_bytes(), "image/png")),
        ("mask", ("m.gif", b"GIF89a", "image/gif")),
    ]
    assert _edit(gw, key, jpeg_mask).json()["error"]["param"] == "mask"
    only_text = [("user", (None, "someone"))]  # multipart without any image part
    assert _edit(gw, key, only_text).json()["error"]["param"] == "image"
    nano = [
        ("image", ("a.png", png_bytes(), "image/png")),
        ("mask", ("m.png", png_bytes(), "image/png")),
    ]
    r = _edit(gw, key, nano, model="nano-banana-pro")
    assert r.status_code == 400 and r.json()["error"]["param"] == "mask"
    assert _upstream_calls(sim) == 0
    _untouched(gw, account)


def test_insufficient_balance_before_any_upstream_call(gw: Gateway, sim: Sim) -> None:
    account, key = gw.account(n_images := DALLE_FLAT * 2 - 1)
    r = _post(gw, key, {**CAT, "n": 2})
    assert r.status_code == 402, r.text
    assert _upstream_calls(sim) == 0
    state = gw.account_state(account)
    assert state["balance"] == n_images and state["open_holds"] == 0
    r = _post(gw, key, {**CAT, "n": 1})
    assert r.status_code == 200  # one image fits
    ledger_consistent(gw, account)


def test_hold_covers_n_at_the_dearest_price_of_the_chain(gw: Gateway, sim: Sim) -> None:
    """dall-e-faulty falls back to a cheaper model: the hold is the dearer of the two."""
    _, key = gw.account(DALLE_FLAT * 3 - 1)
    r = _post(gw, key, {"model": "dall-e-faulty", "prompt": "x", "n": 3})
    assert r.status_code == 402
    assert _upstream_calls(sim) == 0


def _fault(model: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "prompt": "a storm", "user": f"sim:{script}", **extra}


@pytest.mark.parametrize("script", ["status=429;retry_after=7", "status=500", "bad_image"])
def test_faults_fall_back_and_bill_the_model_that_served(
    gw: Gateway, sim: Sim, funded: tuple[str, str], script: str
) -> None:
    account, key = funded
    body = _fault("dall-e-faulty", f"{script};key=primary;fail_times=1", response_format="b64_json")
    r = _post(gw, key, body)
    assert r.status_code == 200, r.text
    assert r.headers["x-faregate-model"] == "dall-e-backup"
    expected = DALLE_FLAT // 2  # the price of the model that served
    settle = [row for row in gw.ledger(account) if row["kind"] == "settle"]
    assert [(row["cost"], row["units"]) for row in settle] == [(expected, {"images": 1})]
    assert r.headers["x-faregate-cost"] == str(expected)
    ledger_consistent(gw, account)


@pytest.mark.parametrize(
    ("script", "status", "code"),
    [
        ("status=429;retry_after=7", 503, "no_provider_available"),
        ("status=500", 502, "provider_error"),
        ("hang", 408, "provider_timeout"),
        ("bad_image", 502, "provider_error"),
        ("stall_after=1", 408, "provider_timeout"),
    ],
)
def test_storms_without_fallback_cost_nothing(
    gw: Gateway, funded: tuple[str, str], script: str, status: int, code: str
) -> None:
    account, key = funded
    r = _post(gw, key, _fault("dall-e-alone", script, response_format="b64_json"))
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.headers["x-faregate-cost"] == "0"
    state = gw.account_state(account)
    assert state["balance"] == BALANCE and state["open_holds"] == 0
    kinds = sorted(row["kind"] for row in gw.ledger(account) if row["kind"] != "grant")
    assert kinds in ([], ["hold", "release"])
    ledger_consistent(gw, account)


@pytest.mark.parametrize(
    ("model", "price"), [("dall-e-alone", DALLE_FLAT), ("nano-banana-pro", GEMINI_FLAT)]
)
def test_partial_success_bills_the_images_delivered(
    gw: Gateway, funded: tuple[str, str], model: str, price: int
) -> None:
    account, key = funded
    r = _post(gw, key, _fault(model, "images=2", n=4, response_format="b64_json"))
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2
    settle = [row for row in gw.ledger(account) if row["kind"] == "settle"]
    assert [row["cost"] for row in settle] == [2 * price]
    hold = [row for row in gw.ledger(account) if row["kind"] == "hold"]
    assert [row["amount"] for row in hold] == [-4 * price]
    assert gw.account_state(account)["balance"] == BALANCE - 2 * price
    ledger_consistent(gw, account)


def test_gemini_upstream_faults(gw: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    r = _post(gw, key, _fault("nano-banana-pro", "status=500"))
    assert r.status_code == 502
    r = _post(gw, key, _fault("nano-banana-pro", "bad_image"))
    assert r.status_code == 502
    assert gw.account_state(account)["balance"] == BALANCE
    ledger_consistent(gw, account)


def test_price_variants(gw: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    r = _post(gw, key, {**CAT, "size": "1024x1792", "quality": "hd", "response_format": "b64_json"})
    assert r.status_code == 200
    assert r.headers["x-faregate-cost"] == str(DALLE_PRICES["1024x1792/hd"])
