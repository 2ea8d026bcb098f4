"""`GET /v1/models` in Anthropic's shape for an Anthropic-authenticated client: the official
`anthropic` SDK's `models.list()` (with its auto-paging) and `models.retrieve()`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anthropic
import httpx
import pytest
from harness import Gateway

CHAT_MODELS = {
    "sim-small",
    "sim-large",
    "sim-faulty",
    "gemini-2.5-flash",
    "dead-model",
    "claude-sim",
    "gemini-sim",
}


def _client(gw: Gateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)


def _get(gw: Gateway, key: str, path: str, **params: Any) -> httpx.Response:
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return httpx.get(gw.url + path, headers=headers, params=params, timeout=10)


def test_models_list_and_retrieve_with_the_sdk(gateway: Gateway) -> None:
    _, key = gateway.account(1_000)
    with _client(gateway, key) as client:
        models = list(client.models.list())
        assert {m.id for m in models} == CHAT_MODELS  # chat models only: not embed-sim
        assert all(m.type == "model" and m.display_name for m in models)
        assert all(isinstance(m.created_at, datetime) for m in models)
        paged = list(client.models.list(limit=2))  # the SDK follows after_id to the end
        assert [m.id for m in paged] == [m.id for m in models]
        one = client.models.retrieve("claude-sim")
        assert one.id == "claude-sim" and one.type == "model"
        with pytest.raises(anthropic.NotFoundError):
            client.models.retrieve("no-such-model")
        with pytest.raises(anthropic.NotFoundError):
            client.models.retrieve("embed-sim")


def test_paging_fields(gateway: Gateway) -> None:
    _, key = gateway.account(1_000)
    everything = _get(gateway, key, "/v1/models").json()
    ids = [m["id"] for m in everything["data"]]
    assert everything["has_more"] is False
    assert (everything["first_id"], everything["last_id"]) == (ids[0], ids[-1])
    first = _get(gateway, key, "/v1/models", limit=3).json()
    assert [m["id"] for m in first["data"]] == ids[:3] and first["has_more"] is True
    assert first["last_id"] == ids[2]
    second = _get(gateway, key, "/v1/models", limit=3, after_id=ids[2]).json()
    assert [m["id"] for m in second["data"]] == ids[3:6]
    back = _get(gateway, key, "/v1/models", limit=2, before_id=ids[3]).json()
    assert [m["id"] for m in back["data"]] == ids[1:3] and back["has_more"] is True
    start = _get(gateway, key, "/v1/models", before_id=ids[1]).json()
    assert [m["id"] for m in start["data"]] == ids[:1] and start["has_more"] is False
    card = everything["data"][0]
    assert set(card) == {"type", "id", "display_name", "created_at"}
    assert card["created_at"].endswith("Z")
    datetime.fromisoformat(card["created_at"])


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"after_id": "nope"}]
)
def test_bad_paging_is_an_anthropic_400(gateway: Gateway, params: dict[str, str]) -> None:
    _, key = gateway.account(1_000)
    r = _get(gateway, key, "/v1/models", **params)
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


def test_a_key_limited_to_some_models_sees_only_those(gateway: Gateway) -> None:
    _, key = gateway.account(1_000, models=["claude-sim"])
    with _client(gateway, key) as client:
        assert [m.id for m in client.models.list()] == ["claude-sim"]
        with pytest.raises(anthropic.NotFoundError):
            client.models.retrieve("sim-small")


def test_a_bad_key_gets_anthropic_s_envelope(gateway: Gateway) -> None:
    with _client(gateway, "fg-wrong") as client, pytest.raises(anthropic.AuthenticationError):
        client.models.list()


def test_x_api_key_and_bearer_both_count(gateway: Gateway) -> None:
    _, key = gateway.account(1_000)
    bearer = {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    r = httpx.get(gateway.url + "/v1/models/claude-sim", headers=bearer, timeout=10)
    assert r.json()["type"] == "model"
    assert _get(gateway, key, "/v1/models/claude-sim").json()["type"] == "model"


def test_other_clients_keep_their_shapes(gateway: Gateway) -> None:
    _, key = gateway.account(1_000)
    openai_list = httpx.get(
        gateway.url + "/v1/models", headers={"authorization": f"Bearer {key}"}, timeout=10
    ).json()
    assert openai_list["object"] == "list" and "embed-sim" in {m["id"] for m in openai_list["data"]}
    google = httpx.get(gateway.url + "/v1/models", headers={"x-goog-api-key": key}, timeout=10)
    assert "models" in google.json()
