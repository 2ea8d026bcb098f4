"""The media facade: signed absolute URLs from the right base, the link's checks, and saving
with the configured retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from faregate.errors import PermissionDenied
from faregate.http.request import Request
from faregate.media.config import MediaConfig
from faregate.media.local import LocalMediaStore
from faregate.media.service import FALLBACK_TYPE, Media, extension, media_type
from faregate.media.signing import Signer
from faregate.media.types import MediaItem

NOW = 1_800_000_000.0
ITEM = MediaItem("Xk3_9aZ-bq2mP0ZyLw8sVt4uR1oN6cHd", "acct", "image/png", 3, NOW, NOW + 7200)


def make(tmp_path: Path, clock: list[float] | None = None, **config: Any) -> Media:
    now = clock or [NOW]
    return Media(
        LocalMediaStore(tmp_path, 1024 * 1024),
        Signer(b"k"),
        MediaConfig.model_validate(config),
        trusted_proxies=["10.0.0.0/8"],
        clock=lambda: now[0],
    )


def request(peer: str = "203.0.113.9", scheme: str = "http", **headers: str) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/images/generations",
        "scheme": scheme,
        "server": ("10.1.2.3", 8080),
        "client": (peer, 50000),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, None)


def test_the_url_is_absolute_signed_and_typed(tmp_path: Path) -> None:
    media = make(tmp_path)
    url = media.url(ITEM, request(host="gw.example:8080"))
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "http",
        "gw.example:8080",
        f"/v1/media/{ITEM.id}.png",
    )
    query = parse_qs(parts.query)
    assert query["expires"] == [str(int(NOW) + 3600)]
    assert media.signer.valid(ITEM.id, int(NOW) + 3600, query["signature"][0])


def test_the_public_base_url_wins(tmp_path: Path) -> None:
    media = make(tmp_path, public_base_url="https://media.example.com/gw/")
    url = media.url(ITEM, request(host="internal:8080"))
    assert url.startswith(f"https://media.example.com/gw/v1/media/{ITEM.id}.png?expires=")


def test_forwarded_headers_count_only_from_trusted_proxies(tmp_path: Path) -> None:
    media = make(tmp_path)
    forwarded = {"host": "internal:8080", "x_forwarded_proto": "https"}
    forwarded["x_forwarded_host"] = "evil.example, api.example.com"
    assert media.base_url(request("10.0.0.5", **forwarded)) == "https://api.example.com"
    assert media.base_url(request("203.0.113.9", **forwarded)) == "http://internal:8080"


@pytest.mark.parametrize("host", ["", "evil.example/path", "a@b", "x y", "h\r\nx: y"])
def test_a_malformed_host_falls_back_to_the_server_address(tmp_path: Path, host: str) -> None:
    assert make(tmp_path).base_url(request(host=host)) == "http://10.1.2.3:8080"


def test_a_link_never_outlives_its_item(tmp_path: Path) -> None:
    media = make(tmp_path, url_ttl_seconds=3600)
    short = MediaItem(ITEM.id, "acct", "video/mp4", 3, NOW, NOW + 600.9)
    query = parse_qs(urlsplit(media.url(short, request(host="h"))).query)
    assert query["expires"] == [str(int(NOW) + 600)]


def test_check_answers_the_seconds_left_and_refuses_bad_links(tmp_path: Path) -> None:
    clock = [NOW]
    media = make(tmp_path, clock)
    expires = int(NOW) + 3600
    good = media.signer.sign(ITEM.id, expires)
    assert media.check(ITEM.id, str(expires), good) == 3600
    for args, code in (
        ((str(expires), "0" * 64), "invalid_signature"),
        ((str(expires + 1), good), "invalid_signature"),
        ((None, good), "invalid_signature"),
        ((str(expires), None), "invalid_signature"),
        (("-5", good), "invalid_signature"),
        (("1" * 40, good), "invalid_signature"),
    ):
        with pytest.raises(PermissionDenied) as refused:
            media.check(ITEM.id, *args)
        assert refused.value.code == code
    clock[0] = expires
    with pytest.raises(PermissionDenied) as late:
        media.check(ITEM.id, str(expires), good)
    assert (late.value.status, late.value.code) == (403, "expired_url")


async def test_save_keeps_the_item_for_the_configured_retention(tmp_path: Path) -> None:
    media = make(tmp_path, url_ttl_seconds=120)
    item = await media.save(b"abc", "image/png; charset=binary", "acct_9")
    assert (item.account_id, item.content_type, item.size) == ("acct_9", "image/png", 3)
    assert item.expires - item.created == pytest.approx(120)
    longer = await make(tmp_path, retention_seconds=900).save(b"abc", "audio/mpeg", "a")
    assert longer.expires - longer.created == pytest.approx(900)
    own = await media.save(b"v", "video/mp4", "a", retention_seconds=86_400)
    assert own.expires - own.created == pytest.approx(86_400)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("image/PNG", "image/png"),
        ("audio/mpeg; rate=44100", "audio/mpeg"),
        ("text/html\r\nx-evil: 1", FALLBACK_TYPE),
        ("nonsense", FALLBACK_TYPE),
        ("", FALLBACK_TYPE),
    ],
)
def test_content_types_are_stored_bare_and_safe(given: str, stored: str) -> None:
    assert media_type(given) == stored


@pytest.mark.parametrize(
    ("content_type", "ext"),
    [
        ("image/png", ".png"),
        ("image/jpeg", ".jpg"),
        ("video/mp4", ".mp4"),
        ("audio/mpeg", ".mp3"),
        ("audio/wav", ".wav"),
        ("application/octet-stream", ".bin"),
        ("x-unknown/thing", ""),
    ],
)
def test_the_extension_follows_the_content_type(content_type: str, ext: str) -> None:
    assert extension(content_type) == ext


def test_the_config_refuses_s3_without_a_bucket() -> None:
    with pytest.raises(ValueError, match=r"media\.s3\.bucket"):
        MediaConfig.model_validate({"backend": "s3"})
    config = MediaConfig.model_validate({"backend": "s3", "s3": {"bucket": "b"}})
    assert config.retention == config.url_ttl_seconds == 3600
