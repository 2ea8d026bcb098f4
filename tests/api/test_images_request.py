"""Image requests from clients: seed spellings, refusals by name, the chat-completions form."""

from __future__ import annotations

from typing import Any

import pytest

from faregate.api.image_chat import parse_chat_images
from faregate.api.images_request import (
    ALIASES,
    canonical,
    parse_edit,
    parse_generation,
    response_format,
)
from faregate.errors import BadRequest, FaregateError, ValidationFailed
from faregate.http.multipart import Form

BASE = {"model": "m", "prompt": "a cat"}


def test_every_camel_case_alias_lands_on_its_snake_case_field() -> None:
    values: dict[str, Any] = {
        "aspectRatio": "16:9",
        "imageSize": "2K",
        "responseFormat": "b64_json",
        "referenceImages": [],
        "negativePrompt": "dogs",
        "googleSearch": True,
        "safetySettings": [{"category": "c", "threshold": "t"}],
        "projectId": "p",
        "veonModelKey": "k",
    }
    assert set(values) == set(ALIASES)
    call = parse_generation({**BASE, **values}, "r")
    assert (call.aspect_ratio, call.resolution, call.negative_prompt) == ("16:9", "2K", "dogs")
    assert (call.google_search, call.project_id, call.veon_model_key) == (True, "p", "k")
    assert call.safety_settings == [{"category": "c", "threshold": "t"}]
    assert response_format({**BASE, "responseFormat": "b64_json"}) == "b64_json"
    assert response_format(BASE) == "url"


@pytest.mark.parametrize(("snake", "camel"), [(v, k) for k, v in ALIASES.items()])
def test_both_spellings_of_one_field_are_refused_naming_both(snake: str, camel: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        canonical({snake: 1, camel: 1})
    assert err.value.status == 422 and err.value.param == f"{snake},{camel}"
    assert snake in err.value.message and camel in err.value.message


@pytest.mark.parametrize(
    ("extra", "error", "param"),
    [
        ({"n": 0}, BadRequest, "n"),
        ({"n": 11}, BadRequest, "n"),
        ({"n": True}, ValidationFailed, "n"),
        ({"size": "10x10"}, BadRequest, "size"),
        ({"style": "bold"}, BadRequest, "style"),
        ({"resolution": "3K"}, BadRequest, "resolution"),
        ({"google_search": "yes"}, ValidationFailed, "google_search"),
        ({"safety_settings": "none"}, ValidationFailed, "safety_settings"),
        ({"prompt": ""}, BadRequest, "prompt"),
        ({"prompt": 5}, ValidationFailed, "prompt"),
        ({"seed": 1}, BadRequest, "seed"),
    ],
)
def test_bad_fields_are_named(
    extra: dict[str, Any], error: type[FaregateError], param: str
) -> None:
    with pytest.raises(error) as err:
        parse_generation({**BASE, **extra}, "r")
    assert err.value.param == param


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "A sunset"}], **extra}


def test_the_seed_004_chat_form() -> None:
    body = chat(
        modalities=["image", "text"], image_config={"aspect_ratio": "16:9", "image_size": "1K"}
    )
    call, refs = parse_chat_images(body, "r")
    assert (call.prompt, call.aspect_ratio, call.resolution, call.n) == (
        "A sunset",
        "16:9",
        "1K",
        1,
    )
    assert refs == []
    call, _ = parse_chat_images(chat(responseModalities=["TEXT", "IMAGE"]), "r")
    assert call.prompt == "A sunset"
    parts = [
        {"type": "text", "text": "Make it blue"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    call, refs = parse_chat_images(
        {"model": "m", "messages": [{"role": "user", "content": parts}]}, "r"
    )
    assert call.prompt == "Make it blue" and refs == [{"url": "data:image/png;base64,AAAA"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(modalities=["text"]), "modalities"),
        (chat(modalities=["image"], responseModalities=["IMAGE"]), "modalities,responseModalities"),
        (chat(stream="yes"), "stream"),
        (chat(temperature=0.5), "temperature"),
        (chat(image_config={"image_size": "8K"}), "image_config.image_size"),
        (chat(image_config={"seed": 1}), "image_config.seed"),
        ({"model": "m", "messages": [{"role": "user", "content": " "}]}, "messages"),
    ],
)
def test_chat_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(FaregateError) as err:
        parse_chat_images(body, "r")
    assert err.value.param == param and err.value.status in (400, 422)


async def test_edit_forms_take_files_not_reference_fields() -> None:
    form = Form(items=[("prompt", "x"), ("model", "m"), ("referenceImages", "data:,")])
    with pytest.raises(BadRequest) as err:
        await parse_edit(form, "r")
    assert err.value.param == "referenceImages"
    with pytest.raises(BadRequest) as err:
        await parse_edit(Form(items=[("prompt", "x"), ("model", "m")]), "r")
    assert err.value.param == "image"
