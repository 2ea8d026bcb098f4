"""Script calls to Redis made in one turn of the event loop, sent together as one pipeline."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

Call = tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]


class ScriptBatch:
    """Every script call made while the loop runs one turn goes out in one pipeline (one
    connection taken from the pool, one write, one read), instead of one round trip each;
    the replies come back in order. A script Redis does not know yet (a restarted server)
    is loaded and its call run again on its own; any other error reaches only its caller."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
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
            replies = await self._replies(batch)
        except NoScriptError:
            replies = [NoScriptError()] * len(batch)
        except Exception as exc:
            replies = [exc] * len(batch)
        except BaseException:
            for *_, fut in batch:
                fut.cancel()
            raise
        for (script, keys, args, fut), reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                try:
                    reply = await script(keys=keys, args=args)  # loads the script, runs it
                except Exception as exc:
                    reply = exc
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    async def _replies(self, batch: list[Call]) -> list[Any]:
        if len(batch) == 1:  # one call needs no pipeline
            script, keys, args, _ = batch[0]
            return [await self._client.evalsha(script.sha, len(keys), *keys, *args)]
        pipe = self._client.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1)
