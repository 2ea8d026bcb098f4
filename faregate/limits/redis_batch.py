"""Script calls to Redis made in one turn of the event loop, sent together on one connection."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis
from hiredis import pack_command
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Call = tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]


class ScriptBatch:
    """Every script call made while the loop runs one turn goes to Redis in one write on one
    connection taken from the client's pool, and the replies are read back in order: one
    round trip for the turn instead of one per call. The commands are packed by hiredis
    (C) and the replies parsed by it too. A script Redis does not know yet (a restarted
    server) is loaded and its call run again on its own; any other error reply reaches only
    its caller. A connection that fails before any reply is read is dropped and the batch
    sent once more on another (as redis-py retries a command once). With a `timeout`, the
    whole batch (retry and script loads included) ends within it, each call then failing
    with `TimeoutError`: one timer per round trip, not one per call."""

    def __init__(self, client: redis.Redis, timeout: float | None = None) -> None:
        self._client = client
        self._timeout = timeout
        self._pending: list[Call] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, fut))
        if len(self._pending) == 1:
            loop.call_soon(self._send)
        return fut

    def _send(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[Call]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._replies(batch)
                for i, (script, keys, args, _) in enumerate(batch):
                    if isinstance(replies[i], NoScriptError):
                        try:  # loads the script, runs it
                            replies[i] = await script(keys=keys, args=args)
                        except Exception as exc:
                            replies[i] = exc
        except Exception as exc:  # the round trip failed or ran out of time: every call
            replies = [exc] * len(batch)
        except BaseException:
            for *_, fut in batch:
                fut.cancel()
            raise
        for (*_, fut), reply in zip(batch, replies, strict=True):
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    async def _replies(self, batch: list[Call]) -> list[Any]:
        payload = b"".join(
            pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
            for script, keys, args, _ in batch
        )
        try:
            return await self._round_trip(payload, len(batch), retry=True)
        except _Unread:  # nothing was read: a dropped connection, sent once more on another
            return await self._round_trip(payload, len(batch), retry=False)

    async def _round_trip(self, payload: bytes, count: int, *, retry: bool) -> list[Any]:
        """The replies to `payload`'s `count` commands; `_Unread` (with `retry`) when the
        connection failed before any reply came."""
        pool = self._client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        replies: list[Any] = []
        try:
            await conn.send_packed_command(payload)
            for _ in range(count):
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # an error reply: read, so the stream is in step
                    replies.append(exc)
        except BaseException as exc:
            await conn.disconnect()  # replies may be left unread on it
            if retry and not replies and isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
                raise _Unread from exc
            raise
        finally:
            await pool.release(conn)
        return replies

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1)


class _Unread(Exception):
    """The connection failed before any reply of the batch was read."""
