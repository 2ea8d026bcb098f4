"""The route table: the app mounts exactly the routes it lists, each once, and the public
client routes are the ones the gateway has always served."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from unittest.mock import MagicMock

import pytest

from faregate.api import routes
from faregate.app import App, Environment
from faregate.config import Config
from faregate.http.router import Route, Visibility
from faregate.kinds import Kind

# (method, path, envelope, kind) of every public client route.
PUBLIC = {
    ("GET", "/v1/media/{media_id}", "openai", None),
    ("HEAD", "/v1/media/{media_id}", "openai", None),
    ("POST", "/v1/chat/completions", "openai", Kind.CHAT),
    ("POST", "/v1/embeddings", "openai", Kind.EMBEDDINGS),
    ("POST", "/v1/audio/transcriptions", "openai", Kind.AUDIO_TRANSCRIPTION),
    ("POST", "/v1/audio/translations", "openai", Kind.AUDIO_TRANSCRIPTION),
    ("POST", "/v1/audio/speech", "openai", Kind.AUDIO_SPEECH),
    ("POST", "/api/v1/audio/transcriptions", "openai", Kind.AUDIO_TRANSCRIPTION),
    ("POST", "/api/v1/audio/translations", "openai", Kind.AUDIO_TRANSCRIPTION),
    ("POST", "/api/v1/audio/speech", "openai", Kind.AUDIO_SPEECH),
    ("GET", "/v1/models", "openai", None),
    ("GET", "/v1/models/{model:path}", "openai", None),
    ("POST", "/v1/models/{model:path}", "gemini", Kind.CHAT),
    ("GET", "/v1/client/balance", "openai", None),
    ("POST", "/api/v1/chat/completions", "openai", Kind.CHAT),
    ("POST", "/api/v1/embeddings", "openai", Kind.EMBEDDINGS),
    ("GET", "/api/v1/models", "openai", None),
    ("GET", "/api/v1/models/{model:path}", "openai", None),
    ("POST", "/api/v1/models/{model:path}", "gemini", Kind.CHAT),
    ("GET", "/api/v1/client/balance", "openai", None),
    ("GET", "/api/client/balance", "openai", None),
    ("POST", "/api/v1/chat", "openai", Kind.CHAT),
    ("POST", "/llmage/v1/chat/completions", "llmage", Kind.CHAT),
    ("POST", "/v1/messages", "anthropic", Kind.CHAT),
    ("POST", "/v1/messages/count_tokens", "anthropic", None),
    ("GET", "/v1beta/models", "gemini", None),
    ("GET", "/v1beta/models/{model:path}", "gemini", None),
    ("POST", "/v1beta/models/{model:path}", "gemini", Kind.CHAT),
    ("GET", "/api/v1beta/models", "gemini", None),
    ("GET", "/api/v1beta/models/{model:path}", "gemini", None),
    ("POST", "/api/v1beta/models/{model:path}", "gemini", Kind.CHAT),
    ("GET", "/api/client/usage", "openai", None),
    ("POST", "/api/client/redeem", "openai", None),
    ("GET", "/v1/client/usage", "openai", None),
    ("POST", "/v1/client/redeem", "openai", None),
    ("GET", "/api/v1/client/usage", "openai", None),
    ("POST", "/api/v1/client/redeem", "openai", None),
    ("POST", "/v1/responses", "openai", Kind.RESPONSES),
    ("GET", "/v1/responses/{response_id}", "openai", None),
    ("DELETE", "/v1/responses/{response_id}", "openai", None),
    ("GET", "/v1/responses/{response_id}/input_items", "openai", None),
    ("POST", "/v1/completions", "openai", Kind.CHAT),
    ("POST", "/api/v1/responses", "openai", Kind.RESPONSES),
    ("GET", "/api/v1/responses/{response_id}", "openai", None),
    ("DELETE", "/api/v1/responses/{response_id}", "openai", None),
    ("GET", "/api/v1/responses/{response_id}/input_items", "openai", None),
    ("POST", "/api/v1/completions", "openai", Kind.CHAT),
    ("POST", "/v1/images/generations", "openai", Kind.IMAGES),
    ("POST", "/v1/images/edits", "openai", Kind.IMAGES),
    ("POST", "/api/v1/images/generations", "openai", Kind.IMAGES),
    ("POST", "/api/v1/images/edits", "openai", Kind.IMAGES),
    ("POST", "/v1/videos", "openai", Kind.VIDEO),
    ("GET", "/v1/videos", "openai", None),
    ("GET", "/v1/videos/{video_id}", "openai", None),
    ("DELETE", "/v1/videos/{video_id}", "openai", None),
    ("GET", "/v1/videos/{video_id}/content", "openai", None),
    ("POST", "/llmage/video", "llmage", Kind.VIDEO),
    ("GET", "/llmage/tasks", "llmage", None),
    ("POST", "/llmage/tasks", "llmage", None),
    ("GET", "/v1/jobs/{job_id}", "openai", None),
}


def pairs(table: list[Route]) -> list[tuple[str, str]]:
    return [(method, r.path) for r in table for method in r.methods]


@pytest.fixture
def table() -> list[Route]:
    return routes.table(routes.Deps(MagicMock(), MagicMock(), MagicMock()))


@pytest.fixture
def mounted(tmp_path: Path) -> list[Route]:
    env = Environment(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, None, None)
    app = App(Config(), env)
    app._mount(MagicMock(), MagicMock())
    return app.router.routes()


def test_every_mounted_route_is_in_the_table_exactly_once(
    table: list[Route], mounted: list[Route]
) -> None:
    listed = pairs(table)
    assert [pair for pair, n in Counter(listed).items() if n > 1] == []
    assert sorted(pairs(mounted)) == sorted(listed)
    assert [(r.path, r.methods, r.protocol, r.kind, r.visibility) for r in mounted] == [
        (r.path, r.methods, r.protocol, r.kind, r.visibility) for r in table
    ]


def test_the_public_client_routes_are_exactly_todays(table: list[Route]) -> None:
    public = {
        (method, r.path, r.protocol, r.kind)
        for r in table
        if r.visibility is Visibility.PUBLIC
        for method in r.methods
    }
    assert public == PUBLIC
    assert {r.path for r in routes.CLIENT} == {path for _, path, _, _ in PUBLIC}


def test_each_route_says_who_it_is_for(table: list[Route]) -> None:
    for r in table:
        if r.path.startswith("/admin/"):
            assert (r.visibility, r.protocol, r.kind) == (Visibility.ADMIN, "admin", None)
        elif r.path in ("/health", "/metrics"):
            assert (r.visibility, r.kind) == (Visibility.INTERNAL, None)
        elif r.path.startswith("/console") or r.path == "/openapi.json":
            assert (r.visibility, r.kind) == (Visibility.CONSOLE, None)
        else:
            assert r.visibility is Visibility.PUBLIC
            assert r.summary


def test_the_table_names_request_and_response_schemas_of_the_openai_spec() -> None:
    by_path = {(d.path, d.methods): d for d in routes.CLIENT}
    chat = by_path["/v1/chat/completions", ("POST",)]
    assert chat.request_schema == routes.OPENAI_SPEC + "CreateChatCompletionRequest"
    assert chat.response_schema == routes.OPENAI_SPEC + "CreateChatCompletionResponse"
