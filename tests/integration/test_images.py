"""Image generation and edits through a running gateway with the official `openai` and
`google-genai` SDKs (unmodified but for base URL and key): shapes, decoded PNGs, exact money."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import types
from harness import Gateway, Sim, ledger_consistent, stop
from images_harness import (
    DALLE_FLAT,
    DALLE_PRICES,
    FLUX_FLAT,
    GEMINI_PRICES,
    GPT_IMAGE,
    decode_png,
    png_bytes,
    start_image_gateway,
)
from openai_spec import openai_validator, requires_spec

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_image_gateway(sim.url, tmp_path_factory.mktemp("images"))
    yield g
    stop(g.proc)


@pytest.fixture
def funded(gw: Gateway) -> tuple[str, str]:
    return gw.account(10_000_000)


@pytest.fixture
def client(gw: Gateway, funded: tuple[str, str]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=funded[1], max_retries=0) as c:
        yield c


def _settled(gw: Gateway, account: str) -> list[dict[str, Any]]:
    """The account's settlements, oldest first."""
    return sorted((r for r in gw.ledger(account) if r["kind"] == "settle"), key=lambda r: r["id"])


def test_generate_b64_json_several_images(
    gw: Gateway, funded: tuple[str, str], client: openai.OpenAI
) -> None:
    account, _ = funded
    raw = client.images.with_raw_response.generate(
        model="dall-e-3",
        prompt="A lighthouse in a storm",
        n=3,
        size="1792x1024",
        quality="hd",
        response_format="b64_json",
    )
    result = raw.parse()
    assert result.data is not None and len(result.data) == 3
    images = [decode_png(d.b64_json or "") for d in result.data]
    assert all(img.format == "PNG" and img.size == (112, 64) for img in images)
    assert len({img.tobytes() for img in images}) == 3  # one image per index
    assert result.data[0].revised_prompt == "A detailed rendering of: A lighthouse in a storm"
    cost = 3 * DALLE_PRICES["1792x1024/hd"]
    assert raw.headers["x-faregate-cost"] == str(cost)
    settle = _settled(gw, account)
    assert [(r["cost"], r["units"]) for r in settle] == [(cost, {"images:1792x1024/hd": 3})]
    assert gw.account_state(account)["balance"] == 10_000_000 - cost
    ledger_consistent(gw, account)


def test_same_prompt_same_image(client: openai.OpenAI) -> None:
    first, second = (
        client.images.generate(model="dall-e-3", prompt="same", response_format="b64_json")
        for _ in range(2)
    )
    assert first.data and second.data
    assert first.data[0].b64_json == second.data[0].b64_json


def test_token_priced_model_bills_the_reported_tokens(
    gw: Gateway, funded: tuple[str, str], client: openai.OpenAI
) -> None:
    account, _ = funded
    result = client.images.generate(
        model="gpt-image-1", prompt="a red fox", n=2, response_format="b64_json"
    )
    assert result.data and all(decode_png(d.b64_json or "") for d in result.data)
    assert result.usage is not None
    assert result.usage.output_tokens == 2 * 272
    cost = -(
        -(
            result.usage.input_tokens * GPT_IMAGE["input"]
            + result.usage.output_tokens * GPT_IMAGE["output"]
        )
        // 10**6
    )
    settle = _settled(gw, account)
    assert [(r["cost"], r["prompt_tokens"], r["completion_tokens"]) for r in settle] == [
        (cost, result.usage.input_tokens, 544)
    ]


def test_edit_with_images_and_a_mask(
    gw: Gateway, funded: tuple[str, str], client: openai.OpenAI
) -> None:
    account, _ = funded
    picture = ("photo.png", png_bytes(), "image/png")
    mask = ("mask.png", png_bytes(colour=(0, 0, 0)), "image/png")
    one = client.images.edit(
        model="dall-e-3", image=picture, mask=mask, prompt="add a hat", response_format="b64_json"
    )
    assert one.data and decode_png(one.data[0].b64_json or "").format == "PNG"
    other = ("other.png", png_bytes(colour=(10, 200, 10)), "image/png")
    two = client.images.edit(
        model="gpt-image-1",
        image=[picture, other],
        prompt="merge them",
        n=2,
        response_format="b64_json",
    )
    assert two.data is not None and len(two.data) == 2
    assert two.usage is not None and two.usage.input_tokens_details.image_tokens == 2 * 65
    assert [r["model"] for r in _settled(gw, account)] == ["dall-e-3", "gpt-image-1"]
    assert _settled(gw, account)[0]["cost"] == DALLE_FLAT
    ledger_consistent(gw, account)


def _genai(gw: Gateway, key: str) -> genai.Client:
    options = types.HttpOptions(
        base_url=gw.url, retry_options=types.HttpRetryOptions(attempts=1), timeout=30_000
    )
    return genai.Client(api_key=key, http_options=options)


def test_google_genai_image_output(gw: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    client = _genai(gw, key)
    try:
        reply = client.models.generate_content(
            model="nano-banana-pro",
            contents="A watercolour of a harbour",
            config=types.GenerateContentConfig(
                response_modalities=["TEXT", "IMAGE"],
                image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"),
            ),
        )
    finally:
        client.close()
    assert reply.candidates and reply.candidates[0].content
    parts = reply.candidates[0].content.parts or []
    blobs = [p.inline_data for p in parts if p.inline_data is not None]
    assert len(blobs) == 1 and blobs[0].mime_type == "image/png"
    from PIL import Image

    img = Image.open(io.BytesIO(blobs[0].data or b""))
    assert img.size == (128, 72)  # 2K at 16:9, scaled down by the simulator
    settle = _settled(gw, account)
    assert [(r["cost"], r["units"]) for r in settle] == [(GEMINI_PRICES["2K"], {"images:2K": 1})]


def test_gemini_chat_model_answers_inline_images(gw: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    client = _genai(gw, key)
    try:
        reply = client.models.generate_content(
            model="gemini-sim",
            contents="Draw a cat",
            config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"]),
        )
    finally:
        client.close()
    assert reply.candidates and reply.candidates[0].content
    blobs = [p.inline_data for p in reply.candidates[0].content.parts or [] if p.inline_data]
    assert blobs and decode_png(__import__("base64").b64encode(blobs[0].data or b"").decode())


def test_seed_004_chat_image_generation(gw: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    body = {
        "model": "black-forest-labs/flux-1.1-pro",
        "messages": [{"role": "user", "content": "A sunset over mountains"}],
        "modalities": ["image", "text"],
        "image_config": {"aspect_ratio": "16:9", "image_size": "1K"},
    }
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", "x-balancer-metadata": "1"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    reply = r.json()
    message = reply["data"]["choices"][0]["message"]
    assert message["role"] == "assistant"
    (image,) = message["images"]
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert decode_png(url.split(",", 1)[1]).size == (64, 36)
    meta = reply["_balancer"]
    assert meta["images_count"] == 1 and meta["credits_used"] == FLUX_FLAT
    assert meta["cost_usd"] == FLUX_FLAT / 1_000_000
    assert [r["cost"] for r in _settled(gw, account)] == [FLUX_FLAT]


def test_chat_image_with_the_openai_sdk_and_seed_000_aliases(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="nano-banana-pro",
        messages=[{"role": "user", "content": "A quiet forest"}],
        extra_body={"responseModalities": ["TEXT", "IMAGE"]},
    )
    message: Any = reply.choices[0].message
    images = message.model_extra["images"]
    assert len(images) == 1 and images[0]["image_url"]["url"].startswith("data:image/png")
    assert reply.usage is not None


def test_seed_000_image_example(gw: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    payload = {
        "model": "nano-banana-pro",
        "prompt": "Futuristic megacity at night, cinematic lighting",
        "aspect_ratio": "16:9",
        "resolution": "2K",
        "response_format": "b64_json",
    }
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    r = httpx.post(gw.url + "/v1/images/generations", headers=headers, json=payload, timeout=300)
    assert r.status_code == 200, r.text
    result = r.json()
    assert decode_png(result["data"][0]["b64_json"]).size == (128, 72)
    camel = {
        "model": "nano-banana-pro",
        "prompt": "Futuristic megacity at night, cinematic lighting",
        "aspectRatio": "9:16",
        "imageSize": "1K",
        "responseFormat": "b64_json",
    }
    r = httpx.post(gw.url + "/v1/images/generations", headers=headers, json=camel, timeout=300)
    assert r.status_code == 200, r.text
    assert decode_png(r.json()["data"][0]["b64_json"]).size == (36, 64)
    costs = [r["cost"] for r in _settled(gw, account)]
    assert costs == [GEMINI_PRICES["2K"], GEMINI_PRICES["1K"]]


def test_models_list_shows_image_models(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"dall-e-3", "nano-banana-pro", "gpt-image-1"} <= ids


def _fetch(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)  # anyone: no key, the signature is the credential


def test_seed_002_sdk_example_answers_a_signed_url(
    gw: Gateway, funded: tuple[str, str], client: openai.OpenAI
) -> None:
    account, key = funded
    with openai.OpenAI(api_key=key, base_url=gw.url + "/api/v1", max_retries=0) as seed:
        response = seed.images.generate(
            model="dall-e-3",
            prompt="A photorealistic cat sitting on a rooftop at sunset",
            size="1024x1024",
            quality="standard",
            n=1,
        )
    assert response.data and response.data[0].url
    url = response.data[0].url
    assert url.startswith(gw.url + "/v1/media/") and "signature=" in url
    fetched = _fetch(url)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/png"
    assert decode_png(__import__("base64").b64encode(fetched.content).decode()).size == (64, 64)
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert _fetch(tampered).status_code == 403
    assert _fetch(url.split("?")[0]).status_code == 403
    # "1024x1024/standard" is not in the table: the size's price applies
    assert [r["cost"] for r in _settled(gw, account)] == [DALLE_PRICES["1024x1024"]]


def test_seed_002_curl_example(gw: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    r = httpx.post(
        gw.url + "/api/v1/images/generations",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        json={
            "model": "dall-e-3",
            "prompt": "A photorealistic cat sitting on a rooftop at sunset",
            "size": "1024x1024",
            "quality": "standard",
            "n": 1,
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    (item,) = r.json()["data"]
    assert _fetch(item["url"]).status_code == 200
    assert item["revised_prompt"].endswith("rooftop at sunset")


def test_upstream_urls_are_copied_into_the_media_store(
    gw: Gateway, sim: Sim, funded: tuple[str, str], client: openai.OpenAI
) -> None:
    """An upstream that answers links (the simulator does for a vendor model asked for no
    format) is copied into the media store, or fetched for `b64_json`; never handed out."""
    result = client.images.generate(model="vendor-flux", prompt="copied", response_format="url")
    assert result.data and result.data[0].url
    assert result.data[0].url.startswith(gw.url + "/v1/media/")
    copied = _fetch(result.data[0].url)
    assert copied.status_code == 200
    inline = client.images.generate(
        model="vendor-flux", prompt="copied", response_format="b64_json"
    )
    assert inline.data and inline.data[0].b64_json
    assert __import__("base64").b64decode(inline.data[0].b64_json) == copied.content


def test_media_links_expire(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> None:
    g = start_image_gateway(
        sim.url, tmp_path_factory.mktemp("expiry"), sections="\n[media]\nurl_ttl_seconds = 1\n"
    )
    try:
        _, key = g.account(1_000_000)
        with openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0) as c:
            url = (c.images.generate(model="dall-e-3", prompt="brief").data or [])[0].url
        assert url
        import time

        time.sleep(2.2)  # past the link's one-second lifetime (fetched in time: other tests)
        expired = _fetch(url)
        assert expired.status_code == 403
        assert expired.json()["error"]["code"] == "expired_url"
    finally:
        stop(g.proc)


@requires_spec
@pytest.mark.parametrize(
    "body",
    [
        {"model": "dall-e-3", "prompt": "shape", "n": 2},
        {"model": "dall-e-3", "prompt": "shape", "response_format": "b64_json"},
        {"model": "gpt-image-1", "prompt": "shape", "response_format": "b64_json"},
        {"model": "nano-banana-pro", "prompt": "shape", "aspect_ratio": "4:3"},
    ],
)
def test_replies_match_the_openai_spec(
    gw: Gateway, funded: tuple[str, str], body: dict[str, Any]
) -> None:
    r = httpx.post(
        gw.url + "/v1/images/generations",
        json=body,
        headers={"authorization": f"Bearer {funded[1]}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    openai_validator("ImagesResponse").validate(r.json())


def test_plans_limit_images_per_minute_apart_from_chat(
    sim: Sim, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Seed 002's plans: an RPM for images of its own (route class `images`)."""
    limits = (
        '\n[limits]\ndefault_plan = "standard"\n'
        "[plans.standard.images]\nrpm = 2\n[plans.standard.chat]\nrpm = 50\n"
    )
    g = start_image_gateway(sim.url, tmp_path_factory.mktemp("plans"), sections=limits)
    try:
        account, key = g.account(10_000_000)
        headers = {"authorization": f"Bearer {key}"}
        body = {"model": "dall-e-3", "prompt": "x", "response_format": "b64_json"}
        statuses = [
            httpx.post(g.url + "/v1/images/generations", json=body, headers=headers, timeout=30)
            for _ in range(3)
        ]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[0].headers["x-ratelimit-limit-requests"] == "2"
        chat = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(g.url + "/v1/chat/completions", json=chat, headers=headers, timeout=30)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-requests"] == "50"
        # an image model through the chat route counts in its own class, not chat's
        painted = {**chat, "model": "black-forest-labs/flux-1.1-pro"}
        r = httpx.post(g.url + "/v1/chat/completions", json=painted, headers=headers, timeout=30)
        assert r.status_code == 429, r.text
        assert r.headers["x-ratelimit-limit-requests"] == "2"
        settled = [row["cost"] for row in _settled(g, account)]
        assert settled[:2] == [DALLE_FLAT, DALLE_FLAT]
        assert len(settled) == 3  # two images and the chat; nothing for the refusal
    finally:
        stop(g.proc)


def test_images_route_metadata_counts_images(gw: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    r = httpx.post(
        gw.url + "/v1/images/generations",
        json={"model": "dall-e-3", "prompt": "meta", "n": 2, "response_format": "b64_json"},
        headers={"authorization": f"Bearer {key}", "x-balancer-metadata": "1"},
        timeout=30,
    )
    assert r.status_code == 200
    meta = r.json()["_balancer"]
    assert meta["images_count"] == 2 and meta["credits_used"] == 2 * DALLE_FLAT
    assert meta["model_used"] == "dall-e-3" and meta["units"] == {"images": 2}


def _via_images(gw: Gateway, key: str, model: str) -> bytes:
    r = httpx.post(
        gw.url + "/v1/images/generations",
        json={"model": model, "prompt": "matrix", "response_format": "b64_json"},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return __import__("base64").b64decode(r.json()["data"][0]["b64_json"])


def _via_edits(gw: Gateway, key: str, model: str) -> bytes:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as c:
        result = c.images.edit(
            model=model,
            image=("in.png", png_bytes(), "image/png"),
            prompt="matrix",
            response_format="b64_json",
        )
    assert result.data and result.data[0].b64_json
    return __import__("base64").b64decode(result.data[0].b64_json)


def _via_chat(gw: Gateway, key: str, model: str) -> bytes:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as c:
        reply = c.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "matrix"}],
            extra_body={"modalities": ["image", "text"]},
        )
    message: Any = reply.choices[0].message
    url = message.model_extra["images"][0]["image_url"]["url"]
    return __import__("base64").b64decode(url.split(",", 1)[1])


def _via_gemini(gw: Gateway, key: str, model: str) -> bytes:
    client = _genai(gw, key)
    try:
        reply = client.models.generate_content(
            model=model,
            contents="matrix",
            config=types.GenerateContentConfig(response_modalities=["IMAGE"]),
        )
    finally:
        client.close()
    assert reply.candidates and reply.candidates[0].content
    blobs = [p.inline_data for p in reply.candidates[0].content.parts or [] if p.inline_data]
    return blobs[0].data or b""


SURFACES = {
    "images/generations": _via_images,
    "images/edits": _via_edits,
    "chat/completions": _via_chat,
    "gemini generateContent": _via_gemini,
}
UPSTREAMS = {"openai": ("dall-e-3", DALLE_FLAT), "gemini": ("nano-banana-pro", GEMINI_PRICES["1K"])}


@pytest.mark.parametrize("upstream", list(UPSTREAMS))
@pytest.mark.parametrize("surface", list(SURFACES))
def test_every_surface_reaches_every_upstream_protocol(
    gw: Gateway, funded: tuple[str, str], surface: str, upstream: str
) -> None:
    account, key = funded
    model, price = UPSTREAMS[upstream]
    data = SURFACES[surface](gw, key, model)
    from PIL import Image

    assert Image.open(io.BytesIO(data)).format == "PNG"
    settle = _settled(gw, account)
    assert [row["cost"] for row in settle] == [price]
    ledger_consistent(gw, account)


def test_several_urls_each_signed(client: openai.OpenAI) -> None:
    result = client.images.generate(model="dall-e-3", prompt="twins", n=2, response_format="url")
    assert result.data is not None and len(result.data) == 2
    urls = [d.url or "" for d in result.data]
    assert len(set(urls)) == 2
    bodies = [_fetch(u) for u in urls]
    assert [b.status_code for b in bodies] == [200, 200]
    assert bodies[0].content != bodies[1].content


def test_seed_000_gemini_native_example(gw: Gateway, funded: tuple[str, str]) -> None:
    """The seed's native body as written, on an image-capable chat model."""
    _, key = funded
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Describe this concept briefly."}]}],
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "thinkingConfig": {"thinkingLevel": "HIGH"},
        },
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
    }
    r = httpx.post(
        gw.url + "/v1beta/models/gemini-sim:generateContent",
        json=body,
        headers={"x-goog-api-key": key},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    parts = r.json()["candidates"][0]["content"]["parts"]
    inline = [p["inlineData"] for p in parts if "inlineData" in p]
    assert inline and decode_png(inline[0]["data"]).format == "PNG"
    assert any(p.get("text") for p in parts)


def test_reference_images_by_data_url_and_link(
    gw: Gateway, sim: Sim, funded: tuple[str, str], client: openai.OpenAI
) -> None:
    """gpt-image-1 (OpenAI) takes them as the images of an edit, nano-banana-pro (Gemini) as
    inline parts; a link is fetched through the guard (loopback allowed in these tests)."""
    _, key = funded
    data_url = "data:image/png;base64," + __import__("base64").b64encode(png_bytes()).decode()
    before = sim.stats()["by_route"].get("images/edits", 0)
    for model in ("gpt-image-1", "nano-banana-pro"):
        r = httpx.post(
            gw.url + "/v1/images/generations",
            json={
                "model": model,
                "prompt": "in this style",
                "referenceImages": [data_url],
                "response_format": "b64_json",
            },
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
    assert sim.stats()["by_route"].get("images/edits", 0) == before + 1
    linked = httpx.post(
        sim.url + "/v1/images/generations",
        json={"model": "flux", "prompt": "source"},
        headers={"authorization": "Bearer sk-sim"},
        timeout=10,
    ).json()["data"][0]["url"]
    r = httpx.post(
        gw.url + "/v1/images/generations",
        json={"model": "nano-banana-pro", "prompt": "like this", "reference_images": [linked]},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_chat_image_stream(gw: Gateway, funded: tuple[str, str], client: openai.OpenAI) -> None:
    account, _ = funded
    stream = client.chat.completions.create(
        model="black-forest-labs/flux-1.1-pro",
        messages=[{"role": "user", "content": "A sunset over mountains"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"modalities": ["image", "text"], "image_config": {"aspect_ratio": "16:9"}},
    )
    chunks = list(stream)
    delta: Any = chunks[0].choices[0].delta
    (image,) = delta.model_extra["images"]
    assert decode_png(image["image_url"]["url"].split(",", 1)[1]).size == (64, 36)
    assert chunks[1].choices[0].finish_reason == "stop"
    usage: Any = chunks[-1].usage
    assert usage is not None and usage.model_extra["cost_micro_credits"] == FLUX_FLAT
    assert [r["cost"] for r in _settled(gw, account)] == [FLUX_FLAT]
