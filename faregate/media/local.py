"""The media store in a local directory: one data file and one JSON sidecar per item."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO, Any

from faregate.media.store import capped, new_id, valid_id
from faregate.media.types import MediaItem

CHUNK = 64 * 1024
STALE_PARTIAL_SECONDS = 86_400.0
"""A temporary file older than this is a write that died with its process; the sweep removes it."""


class LocalMediaStore:
    """Items under `directory/<first two characters of the id>/`: `<id>` holds the bytes and
    `<id>.json` the metadata. Both are written to a temporary name and renamed into place, the
    sidecar last, so an item exists once its sidecar does. File I/O runs off the event loop."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def _paths(self, media_id: str) -> tuple[Path, Path]:
        folder = self.directory / media_id[:2]
        return folder / media_id, folder / f"{media_id}.json"

    async def put(
        self,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        account_id: str,
        retention_seconds: float,
    ) -> MediaItem:
        media_id = new_id()
        path, sidecar = self._paths(media_id)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        partial = path.with_name(f".{media_id}.tmp")
        handle = await asyncio.to_thread(_create, partial)
        size = 0
        try:
            try:
                async for chunk in capped(data, self.max_bytes):
                    await asyncio.to_thread(handle.write, chunk)
                    size += len(chunk)
                await asyncio.to_thread(_finish, handle)
            finally:
                handle.close()
            created = time.time()
            item = MediaItem(
                media_id, account_id, content_type, size, created, created + retention_seconds
            )
            await asyncio.to_thread(os.replace, partial, path)
            await asyncio.to_thread(_write_json, sidecar, item.as_dict())
        except BaseException:
            await asyncio.to_thread(_remove, partial, path, sidecar)
            raise
        return item

    async def open(self, media_id: str) -> tuple[MediaItem, AsyncIterator[bytes]] | None:
        if not valid_id(media_id):
            return None
        path, sidecar = self._paths(media_id)
        item = await asyncio.to_thread(_read_meta, sidecar)
        if item is None or item.id != media_id or item.expires <= time.time():
            return None
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, NotADirectoryError):
            return None
        return item, FileChunks(handle)

    async def delete(self, media_id: str) -> bool:
        if not valid_id(media_id):
            return False
        path, sidecar = self._paths(media_id)
        return await asyncio.to_thread(_remove, sidecar, path)

    async def sweep(self, now: float) -> int:
        return await asyncio.to_thread(self._sweep, now)

    def _sweep(self, now: float) -> int:
        deleted = 0
        if not self.directory.is_dir():
            return 0
        for folder in self.directory.iterdir():
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            for entry in folder.iterdir():
                name = entry.name
                if name.endswith(".json") and valid_id(name[:-5]):
                    item = _read_meta(entry)
                    if item is None or item.expires <= now:
                        deleted += _remove(entry, folder / name[:-5])
                elif name.startswith(".") and name.endswith(".tmp"):
                    _remove_if_older(entry, now - STALE_PARTIAL_SECONDS)
                elif valid_id(name) and not (folder / f"{name}.json").exists():
                    _remove_if_older(entry, now - STALE_PARTIAL_SECONDS)  # a sidecar never came
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        return deleted


class FileChunks:
    """A file's bytes chunk by chunk, read off the event loop; the file closes at the end or
    on `aclose`, even when never iterated."""

    def __init__(self, handle: IO[bytes], chunk_size: int = CHUNK) -> None:
        self._handle = handle
        self._size = chunk_size

    def __aiter__(self) -> FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._handle.closed:
            raise StopAsyncIteration
        chunk = await asyncio.to_thread(self._handle.read, self._size)
        if not chunk:
            self._handle.close()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self._handle.close()


def _create(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _finish(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    with _create(partial) as handle:
        handle.write(json.dumps(data).encode())
        _finish(handle)
    os.replace(partial, path)


def _read_meta(path: Path) -> MediaItem | None:
    try:
        data = json.loads(path.read_bytes())
        return MediaItem(
            str(data["id"]),
            str(data["account_id"]),
            str(data["content_type"]),
            int(data["size"]),
            float(data["created"]),
            float(data["expires"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove(*paths: Path) -> bool:
    """Remove each path that exists; whether the first one did."""
    removed = []
    for path in paths:
        try:
            path.unlink()
            removed.append(True)
        except (FileNotFoundError, NotADirectoryError):
            removed.append(False)
    return removed[0]


def _remove_if_older(path: Path, cutoff: float) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_mtime < cutoff:
            path.unlink()
