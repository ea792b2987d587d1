"""A Redis connection of one component's own, for the commands on a call's path: the
call events `callcard telephony` appends, the frames the API publishes and receives, a
stream's reads.

Commands are written the moment they are given and their replies matched to them in
order as they arrive (pipelined), parsed by hiredis in the protocol's callback. Through
redis-py's client the same round trip costs about three times the CPU (its pool, retry
and per-command timers; on Python 3.11 a task of its own per timed send), and one round
trip per command is all these paths do.

Errors are redis-py's, so a caller handles an outage as with the client: an error reply
is a `ResponseError` (`NoScriptError` for NOSCRIPT), a connection that fails, closes or
stays silent past the reply timeout fails every command waiting on it with redis-py's
`ConnectionError` or `TimeoutError`; the next command connects again."""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import hiredis
from redis import exceptions as errors
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import NoScriptError, ResponseError

Arg = str | bytes | int | float  # a command's part, as Redis gets it
REPLY_TIMEOUT_S = 5.0  # a reply (beyond a blocking read's own wait) comes within this


def pack(*args: Arg) -> bytes:
    """One command as Redis reads it."""
    # (hiredis's stub types the tuple as one of a single item)
    return bytes(hiredis.pack_command(args))  # type: ignore[arg-type]


def error_of(reply: Any) -> ResponseError | None:
    """The error a reply is, as redis-py would raise it."""
    if not isinstance(reply, ResponseError):
        return None
    return NoScriptError(str(reply)) if str(reply).startswith("NOSCRIPT") else reply


def raise_errors(replies: list[Any]) -> list[Any]:
    """`replies`, unless one is an error reply: then the first such is raised."""
    for reply in replies:
        if (error := error_of(reply)) is not None:
            raise error
    return replies


Pushed = Callable[[list[Any] | BaseException], None]


class RedisLine:
    """One connection, opened on first use with the settings of `redis`'s own (address,
    unix socket or TLS, user, password, database).

    `pushed`: for a subscribing connection, gets each message of the channels it
    subscribed to (["message", channel, data]) as it arrives, and the error the
    connection ended with, should it end after it was opened."""

    def __init__(
        self,
        redis: Redis,
        *,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
        pushed: Pushed | None = None,
    ) -> None:
        self._pushed = pushed
        pool = redis.connection_pool
        self._settings = pool.connection_kwargs
        self._tls = issubclass(pool.connection_class, SSLConnection)
        self._reply_timeout_s = reply_timeout_s
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()
        self._shas: dict[str, str] = {}

    async def send(self, packed: bytes, replies: int = 1, *, wait_s: float = 0.0) -> list[Any]:
        """The replies to the `replies` commands in `packed`, error replies among them as
        `ResponseError`s. `wait_s`: how long Redis may hold them on purpose (BLOCK)."""
        link = self._link if self._link is not None else await self._connect()
        return await link.send(packed, replies, self._reply_timeout_s + wait_s)

    def send_now(self, packed: bytes, replies: int = 1) -> Coroutine[Any, Any, list[Any]]:
        """`send`, with `packed` written before this returns when the line is open (else
        when the returned awaitable connects it): what is given now goes out now, not
        when its task's turn on a busy loop comes."""
        link = self._link  # (a link that closed is no longer the line's)
        if link is None:
            return self.send(packed, replies)
        return link.replies(*link.write(packed, replies, self._reply_timeout_s))

    async def execute(self, *args: Arg) -> Any:
        (reply,) = raise_errors(await self.send(pack(*args)))
        return reply

    async def evalsha(self, script: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """`script` run by its SHA, loaded first when Redis does not know it (a restart)."""
        (reply,) = await self.evalsha_many(script, [(keys, args)])
        return reply

    async def evalsha_many(
        self,
        script: str,
        calls: Sequence[tuple[Sequence[str], Sequence[Arg]]],
    ) -> list[Any]:
        """`script` run once per (keys, args) of `calls`, in order and in one round trip;
        an error reply is raised."""
        return await self.evalsha_now(script, calls)

    def evalsha_now(
        self,
        script: str,
        calls: Sequence[tuple[Sequence[str], Sequence[Arg]]],
    ) -> Coroutine[Any, Any, list[Any]]:
        """`evalsha_many`, written now as `send_now` writes."""
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = hashlib.sha1(script.encode()).hexdigest()
        packed = b"".join(pack("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls)
        return self._evaluated(script, packed, len(calls), self.send_now(packed, len(calls)))

    async def _evaluated(
        self,
        script: str,
        packed: bytes,
        count: int,
        sent: Coroutine[Any, Any, list[Any]],
    ) -> list[Any]:
        replies = await sent
        if any(isinstance(error_of(reply), NoScriptError) for reply in replies):
            # Redis restarted since (its script cache is empty): none of them ran.
            await self.execute("SCRIPT", "LOAD", script)
            replies = await self.send(packed, count)
        return raise_errors(replies)

    async def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close(errors.ConnectionError("the connection was closed"))

    async def _connect(self) -> _Link:
        async with self._connecting:
            if self._link is not None:
                return self._link
            settings, loop = self._settings, asyncio.get_running_loop()
            link = _Link(self, self._pushed)
            within = settings.get("socket_connect_timeout") or self._reply_timeout_s
            try:
                async with asyncio.timeout(within):
                    if "path" in settings:
                        await loop.create_unix_connection(lambda: link, settings["path"])
                    else:
                        tls = SSLConnection(**settings).ssl_context.get() if self._tls else None
                        host, port = settings.get("host", "localhost"), settings.get("port", 6379)
                        await loop.create_connection(lambda: link, host, port, ssl=tls)
                    await self._introduce(link)
            except OSError as exc:  # refused, unreachable, or no answer in time
                link.close(errors.ConnectionError(str(exc)))
                raise errors.ConnectionError(f"Error connecting to Redis: {exc}") from exc
            except BaseException:
                link.close(errors.ConnectionError("connecting was given up"))
                raise
            self._link = link
            return link

    async def _introduce(self, link: _Link) -> None:
        settings = self._settings
        commands = []
        if settings.get("password"):
            user = (settings["username"],) if settings.get("username") else ()
            commands.append(pack("AUTH", *user, settings["password"]))
        if settings.get("db"):
            commands.append(pack("SELECT", settings["db"]))
        if commands:
            for reply in await link.send(b"".join(commands), len(commands), self._reply_timeout_s):
                if (error := error_of(reply)) is not None:
                    raise errors.ConnectionError(f"Redis refused the connection: {error}")

    def _lost(self, link: _Link) -> bool:
        """Whether `link` was this line's open connection."""
        if self._link is not link:
            return False
        self._link = None
        return True


class _Link(asyncio.Protocol):
    """One open connection: the commands sent on it wait, oldest first, for their replies."""

    def __init__(self, line: RedisLine, pushed: Pushed | None) -> None:
        self._line = line
        self._pushed = pushed
        self._transport: asyncio.Transport | None = None
        self._parser = hiredis.Reader(replyError=ResponseError)
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._closed: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # (uvloop's is not a subclass)

    async def send(self, packed: bytes, replies: int, within_s: float) -> list[Any]:
        return await self.replies(*self.write(packed, replies, within_s))

    def write(
        self, packed: bytes, replies: int, within_s: float
    ) -> tuple[list[asyncio.Future[Any]], asyncio.TimerHandle]:
        """`packed` written now; the futures of its replies, and the timer that gives the
        connection up should the last of them not come within `within_s`."""
        if self._closed is not None or self._transport is None:
            raise errors.ConnectionError(f"Redis connection lost: {self._closed}")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(replies)]
        self._waiting.extend(futures)
        self._transport.write(packed)
        return futures, loop.call_later(within_s, self._silent, futures[-1])

    @staticmethod
    async def replies(futures: list[asyncio.Future[Any]], timer: asyncio.TimerHandle) -> list[Any]:
        try:
            return [await future for future in futures]
        except BaseException:
            # Cancelled: its replies still come, in their turn, and are dropped; the
            # connection stays in step. Failed: the others failed with it.
            for future in futures:
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # retrieved: asyncio would log it otherwise
            raise
        finally:
            timer.cancel()

    def _silent(self, last: asyncio.Future[Any]) -> None:
        if not last.done():
            self.close(errors.TimeoutError("Timeout reading from Redis"))

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            while (reply := self._parser.gets()) is not False:
                if self._pushed is not None and type(reply) is list and reply[:1] == [b"message"]:
                    self._pushed(reply)
                    continue
                if not self._waiting:
                    raise hiredis.ProtocolError("a reply no command asked for")
                future = self._waiting.popleft()
                if not future.done():
                    future.set_result(reply)
        except hiredis.ProtocolError as exc:
            self.close(errors.ConnectionError(f"Redis sent what is not its protocol: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(errors.ConnectionError(f"Redis closed the connection: {exc or 'end of stream'}"))

    def close(self, why: BaseException) -> None:
        if self._closed is None:
            self._closed = why
            opened = self._line._lost(self)
            if self._transport is not None:
                self._transport.abort()
            if opened and self._pushed is not None:
                self._pushed(why)
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(why)
