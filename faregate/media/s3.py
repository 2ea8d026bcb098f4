"""The media store in an S3-compatible bucket: metadata as object metadata, uploads streamed
in parts, downloads streamed; for several gateway machines sharing one store."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from faregate.media.config import MediaConfig
from faregate.media.store import capped, new_id, valid_id
from faregate.media.types import MediaItem

PART = 8 * 1024 * 1024
"""Bytes per uploaded part (S3 wants at least 5 MiB in every part but the last)."""
MIN_PART = 5 * 1024 * 1024
CHUNK = 64 * 1024
SWEEP_CONCURRENCY = 16
STALE_UPLOAD_SECONDS = 86_400.0
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


class S3MediaStore:
    """Items as objects `{prefix}{id}` with `account-id`, `created` and `expires` in their
    metadata. The client opens on first use and closes with `close`."""

    def __init__(
        self,
        bucket: str,
        max_bytes: int,
        *,
        prefix: str = "media/",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        part_size: int = PART,
    ) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"S3 parts are at least {MIN_PART} bytes")
        self.part_size = part_size
        self.bucket = bucket
        self.prefix = prefix
        self.max_bytes = max_bytes
        self._options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region or "us-east-1",
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
            "config": AioConfig(connect_timeout=10, read_timeout=60, retries={"max_attempts": 3}),
        }
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, config: MediaConfig, environ: Mapping[str, str]) -> S3MediaStore:
        s3 = config.s3
        assert s3.bucket is not None  # the config refuses s3 without a bucket
        return cls(
            s3.bucket,
            config.max_bytes,
            prefix=s3.prefix,
            endpoint_url=s3.endpoint_url,
            region=s3.region,
            access_key=_env(environ, s3.access_key_env, "media.s3.access_key_env"),
            secret_key=_env(environ, s3.secret_key_env, "media.s3.secret_key_env"),
        )

    async def _s3(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    stack = contextlib.AsyncExitStack()
                    client = await stack.enter_async_context(
                        get_session().create_client("s3", **self._options)
                    )
                    self._stack, self._client = stack, client
        return self._client

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    def _key(self, media_id: str) -> str:
        return f"{self.prefix}{media_id}"

    async def put(
        self,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        account_id: str,
        retention_seconds: float,
    ) -> MediaItem:
        client = await self._s3()
        media_id = new_id()
        key = self._key(media_id)
        created = time.time()
        expires = created + retention_seconds
        head = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            "Metadata": {
                "account-id": account_id,
                "created": repr(created),
                "expires": repr(expires),
            },
        }
        upload: Upload | None = None
        buffer = bytearray()
        size = 0
        try:
            async for chunk in capped(data, self.max_bytes):
                buffer += chunk
                size += len(chunk)
                while len(buffer) >= self.part_size:
                    if upload is None:
                        upload = await Upload.begin(client, head)
                    await upload.send(bytes(buffer[: self.part_size]))
                    del buffer[: self.part_size]
            if upload is None:
                await client.put_object(Body=bytes(buffer), **head)
            else:
                if buffer:
                    await upload.send(bytes(buffer))
                await upload.complete()
        except BaseException:
            with contextlib.suppress(Exception):
                if upload is not None:
                    await asyncio.shield(upload.abort())
            raise
        return MediaItem(media_id, account_id, content_type, size, created, expires)

    async def open(self, media_id: str) -> tuple[MediaItem, AsyncIterator[bytes]] | None:
        if not valid_id(media_id):
            return None
        client = await self._s3()
        try:
            reply = await client.get_object(Bucket=self.bucket, Key=self._key(media_id))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        body = reply["Body"]
        item = _item(media_id, reply)
        if item is None or item.expires <= time.time():
            await body.aclose()
            return None
        return item, BodyChunks(body)

    async def delete(self, media_id: str) -> bool:
        if not valid_id(media_id):
            return False
        client = await self._s3()
        key = self._key(media_id)
        try:
            await client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        await client.delete_object(Bucket=self.bucket, Key=key)
        return True

    async def sweep(self, now: float) -> int:
        client = await self._s3()
        gate = asyncio.Semaphore(SWEEP_CONCURRENCY)

        async def expired(key: str) -> bool:
            async with gate:
                try:
                    head = await client.head_object(Bucket=self.bucket, Key=key)
                except ClientError as exc:
                    if _missing(exc):
                        return False
                    raise
                item = _item(key.removeprefix(self.prefix), head)
                if item is not None and item.expires > now:
                    return False
                await client.delete_object(Bucket=self.bucket, Key=key)
                return True

        deleted = 0
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        async for page in pages:
            keys = [
                o["Key"]
                for o in page.get("Contents", ())
                if valid_id(o["Key"].removeprefix(self.prefix))
            ]
            deleted += sum(await asyncio.gather(*(expired(k) for k in keys)))
        await self._abort_stale_uploads(client, now)
        return deleted

    async def _abort_stale_uploads(self, client: Any, now: float) -> None:
        """Abort multipart uploads that a dead process left open for more than a day."""
        reply = await client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        for upload in reply.get("Uploads", ()):
            if upload["Initiated"].timestamp() < now - STALE_UPLOAD_SECONDS:
                with contextlib.suppress(ClientError):
                    await client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )


class Upload:
    """One multipart upload: parts sent as they fill, completed or aborted once."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str) -> None:
        self.client, self.bucket, self.key, self.id = client, bucket, key, upload_id
        self.parts: list[dict[str, Any]] = []

    @classmethod
    async def begin(cls, client: Any, head: Mapping[str, Any]) -> Upload:
        """Start the upload of `head` (bucket, key, content type and metadata)."""
        reply = await client.create_multipart_upload(**head)
        return cls(client, head["Bucket"], head["Key"], reply["UploadId"])

    async def send(self, part: bytes) -> None:
        number = len(self.parts) + 1
        reply = await self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.id, PartNumber=number, Body=part
        )
        self.parts.append({"PartNumber": number, "ETag": reply["ETag"]})

    async def complete(self) -> None:
        await self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.id,
            MultipartUpload={"Parts": self.parts},
        )

    async def abort(self) -> None:
        await self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.id)


class BodyChunks:
    """An object's body chunk by chunk; the connection closes at the end or on `aclose`."""

    def __init__(self, body: Any, chunk_size: int = CHUNK) -> None:
        self._body = body
        self._size = chunk_size
        self._done = False

    def __aiter__(self) -> BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        chunk: bytes = await self._body.read(self._size)
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            await self._body.aclose()


def _item(media_id: str, reply: Mapping[str, Any]) -> MediaItem | None:
    meta = reply.get("Metadata") or {}
    try:
        return MediaItem(
            media_id,
            str(meta["account-id"]),
            str(reply.get("ContentType") or "application/octet-stream"),
            int(reply["ContentLength"]),
            float(meta["created"]),
            float(meta["expires"]),
        )
    except (KeyError, ValueError, TypeError):
        return None


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code")) in _MISSING or status == 404


def _env(environ: Mapping[str, str], name: str | None, setting: str) -> str | None:
    if name is None:
        return None
    value = environ.get(name)
    if not value:
        raise ValueError(f"{setting}: the environment variable {name} is not set")
    return value
