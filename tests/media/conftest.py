"""Fixtures of the media store tests: an S3 server (moto) on a free loopback port, and a
fresh store of each backend."""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import free_port, spawn, stop, wait_http

from faregate.media.local import LocalMediaStore
from faregate.media.s3 import MIN_PART, S3MediaStore

CAP = 12 * 1024 * 1024
KEYS = {"access_key": "test-access", "secret_key": "test-secret"}


@pytest.fixture(scope="session")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server, in a process of its own, for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/moto-api/", proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture
def s3_bucket(s3_url: str) -> str:
    """A new, empty bucket on the S3 server."""
    bucket = f"media-{secrets.token_hex(6)}"
    httpx.put(f"{s3_url}/{bucket}", timeout=10).raise_for_status()
    return bucket


@pytest.fixture
async def s3_store(s3_url: str, s3_bucket: str) -> AsyncIterator[S3MediaStore]:
    store = S3MediaStore(s3_bucket, CAP, endpoint_url=s3_url, part_size=MIN_PART, **KEYS)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def local_store(tmp_path: Path) -> LocalMediaStore:
    return LocalMediaStore(tmp_path / "media", CAP)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> Any:
    """Each backend in turn, for the tests every store must pass."""
    return request.getfixturevalue(f"{request.param}_store")
