"""The media route through a running gateway: an item saved in the gateway's store (by
another process sharing its directory and secret, as a second worker would) is served by its
signed URL, without an API key; a tampered or expired link answers 403, an unknown id 404, in
the OpenAI envelope; the sweeper deletes expired items."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import Gateway, Sim, start_gateway, stop

from faregate.media.config import MediaConfig
from faregate.media.local import LocalMediaStore
from faregate.media.service import Media
from faregate.media.signing import Signer, load_secret
from faregate.media.types import MediaItem

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 1024  # 256 kB


def media_of(gw: Gateway) -> Media:
    """The gateway's store and signer, opened from its home folder."""
    signer = Signer(load_secret(None, gw.home, {}))
    return Media(LocalMediaStore(gw.home / "media", 1 << 30), signer, MediaConfig())


def save(media: Media, data: bytes, content_type: str, retention: float = 600) -> MediaItem:
    return asyncio.run(media.save(data, content_type, "acct_test", retention_seconds=retention))


def link(gw: Gateway, media: Media, item: MediaItem) -> str:
    return gw.url + media.signed_path(item)


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_a_signed_url_serves_the_bytes_without_a_key(gateway: Gateway) -> None:
    media = media_of(gateway)
    item = save(media, PNG, "image/png")
    url = link(gateway, media, item)
    assert f"/v1/media/{item.id}.png?expires=" in url
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.content == PNG
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-length"] == str(len(PNG))
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"] == "inline"
    max_age = int(r.headers["cache-control"].removeprefix("private, max-age="))
    assert 0 < max_age <= 3600


def test_head_answers_the_headers_only(gateway: Gateway) -> None:
    media = media_of(gateway)
    item = save(media, b"ID3" + bytes(5000), "audio/mpeg")
    r = httpx.head(link(gateway, media, item), timeout=10)
    assert r.status_code == 200
    assert r.content == b""
    assert (r.headers["content-type"], r.headers["content-length"]) == ("audio/mpeg", "5003")


def test_the_body_streams_to_a_reader(gateway: Gateway) -> None:
    media = media_of(gateway)
    item = save(media, bytes(3 * 1024 * 1024), "video/mp4")
    with httpx.stream("GET", link(gateway, media, item), timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(3 * 1024 * 1024)
        assert sum(len(c) for c in r.iter_bytes()) == 3 * 1024 * 1024


def test_a_tampered_link_is_refused(gateway: Gateway) -> None:
    media = media_of(gateway)
    item = save(media, PNG, "image/png")
    url = link(gateway, media, item)
    base, _, query = url.partition("?")
    expires = query.split("&")[0].removeprefix("expires=")
    signature = query.split("signature=")[1]
    other = "0" if signature[0] != "0" else "1"
    for bad in (
        f"{base}?expires={expires}&signature={other}{signature[1:]}",
        f"{base}?expires={int(expires) + 86_400}&signature={signature}",
        f"{base.replace(item.id, item.id[:-1] + ('A' if item.id[-1] != 'A' else 'B'))}?{query}",
        f"{base}?expires={expires}",
        base,
    ):
        refused(httpx.get(bad, timeout=10), 403, "invalid_signature")


@pytest.mark.parametrize(
    "query",
    [
        "expires=abc&signature=zz",
        "expires=99999999999999999999999&signature=" + "0" * 64,
        "expires=-1&signature=" + "0" * 64,
        "expires=1&expires=2&signature=%C3%A9%00",
        "signature=" + "0" * 64,
    ],
)
@pytest.mark.parametrize("name", ["x", "..%5C..%5Csecret.key", "%00", "a" * 300 + ".png"])
def test_hostile_links_are_refused_cleanly(gateway: Gateway, name: str, query: str) -> None:
    r = httpx.get(f"{gateway.url}/v1/media/{name}?{query}", timeout=10)
    refused(r, 403, "invalid_signature")


def test_a_path_out_of_the_store_matches_no_route(gateway: Gateway) -> None:
    r = httpx.get(f"{gateway.url}/v1/media/..%2F..%2Fsecret.key?expires=1&signature=0", timeout=10)
    refused(r, 404, "unknown_route")


def test_an_expired_link_is_refused(gateway: Gateway) -> None:
    media = media_of(gateway)
    item = save(media, PNG, "image/png")
    past = int(time.time()) - 1
    url = f"{gateway.url}/v1/media/{item.id}.png?expires={past}&signature="
    refused(httpx.get(url + media.signer.sign(item.id, past), timeout=10), 403, "expired_url")


def test_an_unknown_or_expired_item_is_not_found(gateway: Gateway) -> None:
    media = media_of(gateway)
    gone = MediaItem("N0tStoredN0tStoredN0tStoredN0tSt", "a", "image/png", 1, 0, time.time() + 60)
    refused(httpx.get(link(gateway, media, gone), timeout=10), 404, "media_not_found")
    kept_briefly = save(media, PNG, "image/png", retention=0)
    still_signed = dataclasses.replace(kept_briefly, expires=time.time() + 60)
    r = httpx.get(link(gateway, media, still_signed), timeout=10)
    refused(r, 404, "media_not_found")


def test_other_methods_are_not_allowed(gateway: Gateway) -> None:
    media = media_of(gateway)
    item = save(media, PNG, "image/png")
    r = httpx.post(link(gateway, media, item), timeout=10)
    assert r.status_code == 405
    assert "GET" in r.headers["allow"]


@pytest.fixture(scope="module")
def sweeping(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that sweeps its media store every 0.2 s."""
    gw = start_gateway(
        sim.url,
        tmp_path_factory.mktemp("media-sweep"),
        sections="\n[media]\nsweep_interval_seconds = 0.2\n",
    )
    yield gw
    stop(gw.proc)


def test_the_sweeper_deletes_expired_items_and_keeps_the_rest(sweeping: Gateway) -> None:
    media = media_of(sweeping)
    doomed = save(media, PNG, "image/png", retention=0.5)
    kept = save(media, PNG, "image/png", retention=3600)
    folder = sweeping.home / "media" / doomed.id[:2]
    deadline = time.monotonic() + 20
    while (folder / doomed.id).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (folder / doomed.id).exists()
    assert not (folder / f"{doomed.id}.json").exists()
    assert httpx.get(link(sweeping, media, kept), timeout=10).content == PNG


def test_a_config_without_an_s3_bucket_is_refused(tmp_path: Path) -> None:
    from faregate.config import ConfigError
    from faregate.config_load import load_config

    path = tmp_path / "faregate.toml"
    path.write_text('[media]\nbackend = "s3"\n')
    with pytest.raises(ConfigError, match=r"media\.s3\.bucket"):
        load_config(path)
