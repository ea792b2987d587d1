"""The connection the call path's Redis commands go on, against a real redis-server: many
commands in flight at once each get their own reply, an error reply or a cancelled
command puts no other out of step, and a Redis that stops, restarts empty, stays silent
or answers garbage fails what waits with redis-py's errors, after which it connects again."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aredis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError
from support.restartable_redis import restartable_redis
from support.waiting import wait_for

from crm_api.platform.realtime.redis_line import RedisLine, pack

COUNT_UP = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@contextlib.asynccontextmanager
async def line_to(url: str, **kwargs: float) -> AsyncIterator[RedisLine]:
    client = aredis.Redis.from_url(url, protocol=2)
    line = RedisLine(client, **kwargs)
    try:
        yield line
    finally:
        await line.close()
        await client.aclose()


async def test_commands_in_flight_together_each_get_their_own_reply(redis_url: str) -> None:
    async with line_to(redis_url) as line:
        words = [f"звонок {n}" for n in range(300)]
        replies = await asyncio.gather(*(line.execute("ECHO", word) for word in words))
        assert [reply.decode() for reply in replies] == words
        # Several commands in one write, their replies in order.
        key = f"test:line:{uuid.uuid4().hex}"
        packed = pack("SET", key, "1") + pack("INCR", key) + pack("GET", key)
        assert await line.send(packed, 3) == [b"OK", 2, b"2"]


async def test_an_error_reply_is_raised_and_the_next_command_is_answered(redis_url: str) -> None:
    async with line_to(redis_url) as line:
        with pytest.raises(ResponseError, match="unknown command"):
            await line.execute("NO-SUCH-COMMAND")
        key = f"test:line:{uuid.uuid4().hex}"
        await line.execute("SET", key, "text")
        # Among several, the error is a reply of its own; the others stand.
        replies = await line.send(pack("INCR", key) + pack("GET", key), 2)
        assert isinstance(replies[0], ResponseError)
        assert replies[1] == b"text"


async def test_a_command_given_now_is_carried_out_before_it_is_awaited(redis_url: str) -> None:
    """`send_now` writes the command before it returns, so Redis carries it out while the
    awaitable still waits for its turn on the loop; awaited, it gives the reply. On a line
    not connected yet, the awaitable connects first."""
    key = f"test:line:{uuid.uuid4().hex}"
    client = aredis.Redis.from_url(redis_url)
    try:
        async with line_to(redis_url) as line:
            assert await line.send_now(pack("SET", key, "0")) == [b"OK"]  # connects
            pending = line.send_now(pack("INCR", key))

            async def carried_out() -> bool:
                return await client.get(key) == b"1"

            await wait_for(carried_out, within=5)
            assert await pending == [1]
    finally:
        await client.aclose()


async def test_a_cancelled_command_puts_no_other_out_of_step(redis_url: str) -> None:
    async with line_to(redis_url) as line:
        key = f"test:line:{uuid.uuid4().hex}"
        waiting = asyncio.create_task(line.send(pack("BLPOP", key, "0.3"), wait_s=0.3))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        # Sent after it, answered after it: its reply (nil) is not taken for this one's.
        assert await line.execute("ECHO", "после") == "после".encode()


async def test_a_script_redis_does_not_know_is_loaded_and_run(redis_url: str) -> None:
    async with line_to(redis_url) as line:
        key = f"test:line:{uuid.uuid4().hex}"
        assert await line.evalsha(COUNT_UP, [key], [2]) == 2
        await line.execute("SCRIPT", "FLUSH")  # as after a restart
        assert await line.evalsha_many(COUNT_UP, [([key], [3]), ([key], [4])]) == [5, 9]


async def test_redis_stopped_fails_what_waits_and_once_back_it_connects_again(
    tmp_path: Path,
) -> None:
    async with (
        restartable_redis(tmp_path / "redis", persistent=False) as server,
        line_to(server.url) as line,
    ):
        key = f"test:line:{uuid.uuid4().hex}"
        assert await line.execute("INCR", key) == 1
        waiting = asyncio.create_task(line.send(pack("BLPOP", key + ":list", "5"), wait_s=5))
        await asyncio.sleep(0.1)
        await server.stop()
        with pytest.raises(ConnectionError):
            await waiting
        with pytest.raises(ConnectionError, match="connecting"):
            await line.execute("PING")
        await server.start()
        assert await line.execute("INCR", key) == 1  # restarted empty
        assert await line.evalsha(COUNT_UP, [key], [1]) == 2  # its script cache empty too


async def test_a_subscribing_line_hands_on_each_message_then_the_end_of_its_connection(
    tmp_path: Path,
) -> None:
    async with restartable_redis(tmp_path / "redis", persistent=False) as server:
        client = aredis.Redis.from_url(server.url, protocol=2)
        pushed: asyncio.Queue[list[Any] | BaseException] = asyncio.Queue()
        line = RedisLine(client, pushed=pushed.put_nowait)
        try:
            assert await line.execute("SUBSCRIBE", "канал") == [b"subscribe", "канал".encode(), 1]
            for n in range(3):
                await client.publish("канал", f"кадр {n}")
            for n in range(3):
                message = await asyncio.wait_for(pushed.get(), 5)
                assert message == [b"message", "канал".encode(), f"кадр {n}".encode()]
            await server.stop()
            assert isinstance(await asyncio.wait_for(pushed.get(), 5), ConnectionError)
        finally:
            await line.close()
            await client.aclose()
        assert pushed.empty()  # closing a line whose connection is gone says nothing more


@contextlib.asynccontextmanager
async def fake_redis(answer: Callable[[bytes], bytes | None]) -> AsyncIterator[str]:
    """A server on loopback that answers each read with `answer(read)` (None: nothing)."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while data := await reader.read(65536):
            if (reply := answer(data)) is not None:
                writer.write(reply)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()


async def test_a_silent_server_times_out_and_the_next_command_connects_again() -> None:
    answered = False

    def once_silent(_: bytes) -> bytes | None:
        nonlocal answered
        if answered:
            return b"+PONG\r\n"
        answered = True
        return None

    async with fake_redis(once_silent) as url, line_to(url, reply_timeout_s=0.3) as line:
        with pytest.raises(TimeoutError):
            await line.execute("PING")
        assert await line.execute("PING") == b"PONG"


async def test_garbage_from_the_server_fails_the_command_with_a_clear_error() -> None:
    async with (
        fake_redis(lambda _: b"HTTP/1.1 400 Bad Request\r\n\r\n") as url,
        line_to(url) as line,
    ):
        with pytest.raises(ConnectionError, match="not its protocol"):
            await line.execute("PING")


async def test_password_and_database_of_the_url_are_used(redis_url: str) -> None:
    user, password = f"line-{uuid.uuid4().hex[:8]}", "пароль-1"
    admin = aredis.Redis.from_url(redis_url, protocol=2)
    await admin.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"]
    )
    address = urlsplit(redis_url)
    try:
        as_user = address._replace(netloc=f"{user}:{password}@{address.hostname}:{address.port}")
        async with line_to(as_user._replace(path="/7").geturl()) as line:
            key = f"test:line:{uuid.uuid4().hex}"
            await line.execute("SET", key, "в базе 7")
        on_7 = aredis.Redis.from_url(address._replace(path="/7").geturl(), protocol=2)
        assert await on_7.get(key) == "в базе 7".encode()
        await on_7.delete(key)
        await on_7.aclose()
        wrong = as_user._replace(netloc=f"{user}:wrong@{address.hostname}:{address.port}")
        async with line_to(wrong.geturl()) as line:
            with pytest.raises(ConnectionError, match="refused"):
                await line.execute("PING")
    finally:
        await admin.acl_deluser(user)
        await admin.aclose()
