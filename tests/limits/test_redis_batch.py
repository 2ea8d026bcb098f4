"""Script calls batched per loop turn, against the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import hiredis
import pytest
import redis.asyncio as redis
from harness import never_answers, tcp_server
from redis.exceptions import ResponseError

from faregate.limits.redis_batch import ScriptBatch

URL = os.environ.get("FAREGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
ECHO = "return {KEYS[1], ARGV[1]}"
FAIL = "return redis.error_reply('no such thing')"


class CountingConnection(redis.Connection):
    """A connection that counts the script writes of every connection of its class."""

    writes = 0

    async def send_packed_command(self, command: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(command, bytes) and b"EVALSHA" in command:
            CountingConnection.writes += 1
        await super().send_packed_command(command, *args, **kwargs)


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    c = redis.Redis.from_url(URL, connection_class=CountingConnection)
    CountingConnection.writes = 0
    yield c
    await c.aclose()


async def test_calls_in_one_loop_turn_share_one_write_and_keep_their_order(
    client: redis.Redis,
) -> None:
    echo = client.register_script(ECHO)
    await client.script_load(ECHO)
    CountingConnection.writes = 0
    batch = ScriptBatch(client)
    futures = [batch.call(echo, [f"k{i}"], [i]) for i in range(20)]
    replies = await asyncio.gather(*futures)
    assert replies == [[f"k{i}".encode(), str(i).encode()] for i in range(20)]
    assert CountingConnection.writes == 1
    assert await batch.call(echo, ["alone"], [1]) == [b"alone", b"1"]
    assert CountingConnection.writes == 2
    await batch.close()


async def test_an_error_reaches_only_its_own_caller(client: redis.Redis) -> None:
    echo, fail = client.register_script(ECHO), client.register_script(FAIL)
    await client.script_load(ECHO)
    await client.script_load(FAIL)
    batch = ScriptBatch(client)
    results = await asyncio.gather(
        batch.call(echo, ["a"], [1]), batch.call(fail, ["b"], [2]), return_exceptions=True
    )
    assert results[0] == [b"a", b"1"]
    assert isinstance(results[1], ResponseError) and "no such thing" in str(results[1])


async def test_a_script_redis_forgot_is_loaded_and_run_again(client: redis.Redis) -> None:
    script = "return {KEYS[1], 'fresh-" + os.urandom(4).hex() + "'}"  # never loaded before
    fresh = client.register_script(script)
    batch = ScriptBatch(client)
    a, b = await asyncio.gather(batch.call(fresh, ["x"], []), batch.call(fresh, ["y"], []))
    assert (a[0], b[0]) == (b"x", b"y")


async def test_a_dead_redis_fails_every_call_of_the_batch() -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    echo = dead.register_script(ECHO)
    batch = ScriptBatch(dead)
    results = await asyncio.gather(
        batch.call(echo, ["a"], [1]), batch.call(echo, ["b"], [2]), return_exceptions=True
    )
    assert all(isinstance(r, redis.ConnectionError) for r in results)
    await dead.aclose()


async def test_a_connection_redis_dropped_is_replaced_and_the_batch_sent_again(
    client: redis.Redis,
) -> None:
    echo = client.register_script(ECHO)
    await client.script_load(ECHO)
    batch = ScriptBatch(client)
    assert await batch.call(echo, ["a"], [1]) == [b"a", b"1"]  # one pooled connection now
    name = f"fgtest-kill-{os.getpid()}"
    await client.client_setname(name)  # names the pooled connection the batch will take
    killer = redis.Redis.from_url(URL)
    clients = await killer.client_list()
    await killer.client_kill_filter(_id=next(c["id"] for c in clients if c["name"] == name))
    await killer.aclose()
    CountingConnection.writes = 0
    replies = await asyncio.gather(batch.call(echo, ["b"], [2]), batch.call(echo, ["c"], [3]))
    assert replies == [[b"b", b"2"], [b"c", b"3"]]
    # Sent again on a new connection, unless redis-py saw the connection closed first.
    assert CountingConnection.writes in (1, 2)


async def test_a_batch_whose_connection_dies_before_any_reply_is_sent_once_more() -> None:
    """A server that drops the first connection on its first script call, unanswered, and
    answers every later one: the batch goes out again on a new connection."""
    scripts: list[int] = []
    connections = [0]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        this = connections[0]
        parser = hiredis.Reader()
        while data := await reader.read(1 << 16):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                if command[0].upper() == b"HELLO":  # no RESP3 here: the client falls back
                    writer.write(b"-ERR unknown command 'HELLO'\r\n")
                    continue
                if command[0].upper() != b"EVALSHA":
                    writer.write(b"+OK\r\n")  # the client's other set-up commands
                    continue
                scripts.append(this)
                if this == 1:  # the first connection dies unanswered
                    writer.close()
                    return
                key, arg = command[3], command[4]
                writer.write(b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(arg), arg))
            await writer.drain()

    async with tcp_server(serve) as port:
        fake = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
        batch = ScriptBatch(fake, timeout=5)
        echo = fake.register_script(ECHO)
        replies = await asyncio.gather(batch.call(echo, ["b"], [2]), batch.call(echo, ["c"], [3]))
        assert replies == [[b"b", b"2"], [b"c", b"3"]]
        assert scripts == [1, 2, 2]  # the first call on the dead connection, both on the new one
        await batch.close()
        await fake.aclose()


async def test_a_silent_redis_fails_the_whole_batch_within_its_timeout() -> None:
    async with tcp_server(never_answers) as port:
        silent = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0")  # no socket timeouts
        echo = silent.register_script(ECHO)
        batch = ScriptBatch(silent, timeout=0.2)
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            batch.call(echo, ["a"], [1]), batch.call(echo, ["b"], [2]), return_exceptions=True
        )
        assert all(isinstance(r, TimeoutError) for r in results), results
        assert asyncio.get_running_loop().time() - started < 1.5
        await batch.close()
        await silent.aclose()
