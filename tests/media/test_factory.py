"""The app builds the configured media store: the local folder under FAREGATE_HOME, or the S3
bucket; links made by `Media.url` from a request inside the app are served by the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faregate.app import App, Environment
from faregate.config import Config, ConfigError
from faregate.http.request import Request
from faregate.http.responses import Response
from faregate.media.config import MediaConfig
from faregate.media.factory import make_media
from faregate.media.local import LocalMediaStore
from faregate.media.s3 import S3MediaStore

ADMIN = "fga-media-test-admin-key-of-32-characters"
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 2000


def test_the_local_store_lives_under_the_home_folder_by_default(tmp_path: Path) -> None:
    media = make_media(MediaConfig(), tmp_path, environ={})
    assert isinstance(media.store, LocalMediaStore)
    assert media.store.directory == tmp_path / "media"
    assert media.store.max_bytes == 100 * 1024 * 1024
    assert (tmp_path / "media.secret").is_file()
    other = make_media(MediaConfig(directory=str(tmp_path / "elsewhere"), max_bytes=4096), tmp_path)
    assert isinstance(other.store, LocalMediaStore)
    assert (other.store.directory, other.store.max_bytes) == (tmp_path / "elsewhere", 4096)


def test_the_s3_store_takes_its_keys_from_the_named_variables(tmp_path: Path) -> None:
    config = MediaConfig.model_validate(
        {
            "backend": "s3",
            "secret_env": "MEDIA_SECRET",
            "s3": {"bucket": "b", "access_key_env": "S3_KEY", "secret_key_env": "S3_SECRET"},
        }
    )
    env = {"MEDIA_SECRET": "m", "S3_KEY": "k", "S3_SECRET": "s"}
    media = make_media(config, tmp_path, environ=env)
    assert isinstance(media.store, S3MediaStore)
    assert (media.store.bucket, media.store.prefix) == ("b", "media/")
    assert not (tmp_path / "media.secret").exists()
    with pytest.raises(ValueError, match="S3_SECRET is not set"):
        make_media(config, tmp_path, environ={"MEDIA_SECRET": "m", "S3_KEY": "k"})


async def test_a_missing_signing_secret_stops_the_start(tmp_path: Path) -> None:
    config = Config.model_validate({"media": {"secret_env": "FAREGATE_TEST_NO_SUCH_SECRET"}})
    env = Environment(f"sqlite:///{tmp_path / 'faregate.db'}", tmp_path, "secret", ADMIN)
    app = App(config, env)
    with pytest.raises(ConfigError, match="FAREGATE_TEST_NO_SUCH_SECRET is not set"):
        await app.start()
    await app.stop()


async def serve_saved(app: App) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a test-only route that saves a file and answers its link, as an images
    route answering `response_format: "url"` does."""
    await app.start()

    async def handler(req: Request) -> Response:
        svc = app.services
        assert svc is not None and svc.media is not None
        item = await svc.media.save(MP4, "video/mp4", "acct_test")
        return Response.json({"url": svc.media.url(item, req)})

    app.router.add("/v1/test/media", ["POST"], handler)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://gw.test") as c:
            yield c
    finally:
        await app.stop()


@pytest.fixture(params=["local", "s3"])
async def client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    media: dict[str, Any] = {"secret_env": "FAREGATE_TEST_MEDIA_SECRET"}
    monkeypatch.setenv("FAREGATE_TEST_MEDIA_SECRET", "media-test-secret")
    if request.param == "s3":
        s3_url = request.getfixturevalue("s3_url")
        monkeypatch.setenv("FAREGATE_TEST_S3_KEY", "test-access")
        monkeypatch.setenv("FAREGATE_TEST_S3_SECRET", "test-secret")
        media["backend"] = "s3"
        media["s3"] = {
            "endpoint_url": s3_url,
            "bucket": request.getfixturevalue("s3_bucket"),
            "access_key_env": "FAREGATE_TEST_S3_KEY",
            "secret_key_env": "FAREGATE_TEST_S3_SECRET",
        }
    config = Config.model_validate({"media": media})
    env = Environment(f"sqlite:///{tmp_path / 'faregate.db'}", tmp_path, "secret", ADMIN)
    async for c in serve_saved(App(config, env)):
        yield c


async def test_a_link_made_in_the_app_is_served_by_the_app(client: httpx.AsyncClient) -> None:
    url = (await client.post("/v1/test/media")).json()["url"]
    assert url.startswith("https://gw.test/v1/media/")
    assert ".mp4?expires=" in url
    r = await client.get(url)
    assert r.status_code == 200, r.text
    assert (r.content, r.headers["content-type"]) == (MP4, "video/mp4")
    assert r.headers["content-length"] == str(len(MP4))
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    r = await client.get(tampered)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "invalid_signature")
