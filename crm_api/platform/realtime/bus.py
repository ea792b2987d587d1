"""Fan-out of frames to every API worker, and the backlog a reconnecting socket resumes
from. In-process for the embedded default; Redis pub/sub and a capped stream when
CALLCARD_REDIS_URL is set. A worker cut off from Redis reads the stream on from the last
frame it saw once it is back, so an outage makes frames late, not missing, for the sockets
that stay open."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from crm_api.platform.realtime.frames import Frame, frame_key
from crm_api.platform.realtime.outage import Outage, reraise_if_cancelled
from crm_api.platform.realtime.redis_line import Arg, RedisLine

log = logging.getLogger(__name__)
Deliver = Callable[[Frame], None]
FRAMES_CHANNEL = "callcard:rt:frames"
BACKLOG_STREAM = "callcard:rt:backlog"
READ_BATCH = 500
RETRY_MAX_S = 2.0
# Appends a frame unless this writer's marker is gone (Redis lost its data): then nil.
_PUBLISH = """
if ARGV[2] == '1' then
  redis.call('SET', KEYS[2], '1', 'EX', 86400)
elseif redis.call('EXPIRE', KEYS[2], 86400) == 0 then
  return false
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'f', ARGV[3], 'u', ARGV[4])
redis.call('PUBLISH', KEYS[3], id .. ' ' .. ARGV[4] .. ' ' .. ARGV[3])
return id
"""


class Bus(Protocol):
    async def publish(self, frame: Frame) -> Frame:
        """Gives the frame its id, keeps it in the backlog and fans it out. A publish that
        raised may have been carried out: retried with the same frame, it reaches readers
        once. A bus that drops a copy itself returns it as given, without an id."""
        ...

    def publish_now(self, frame: Frame) -> Coroutine[Any, Any, Frame]:
        """`publish`, handed on before this returns where the bus can (its connection is
        open); the awaitable, which must be awaited, gives the outcome."""
        ...

    async def publish_many(self, frames: Sequence[Frame]) -> list[Frame]:
        """`publish` of each frame in order, at the cost of one: one round trip for all."""
        ...

    async def subscribe(self, deliver: Deliver) -> Coroutine[Any, Any, None]:
        """`deliver` gets every frame published by any worker from the moment this
        returns, in order and once, as it is read (no task's turn in between: a pop goes on
        to its sockets in the same turn of the loop). The awaitable, which must be awaited,
        keeps the subscription through any outage until the bus is closed."""
        ...

    async def since(self, frame_id: str) -> list[Frame] | None:
        """Frames after `frame_id`, or None when the backlog no longer reaches back."""
        ...

    async def close(self) -> None: ...


class InProcessBus:
    def __init__(self, backlog: int = 1000) -> None:
        self._backlog: deque[Frame] = deque(maxlen=backlog)
        self._subscribers: set[Deliver] = set()
        self._closed = asyncio.Event()
        self._last = (int(time.time() * 1000), 0)
        # The newest id that fell out of the backlog; at start, everything before now
        # (an id from a previous process cannot be resumed from).
        self._dropped = self._last
        self._seen = _Seen()  # a frame published again (same tag) goes out once

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    async def publish(self, frame: Frame) -> Frame:
        return self._deliver(frame)

    def publish_now(self, frame: Frame) -> Coroutine[Any, Any, Frame]:
        return _done(self._deliver(frame))

    def _deliver(self, frame: Frame) -> Frame:
        if not self._seen.first_time(frame.tag.encode()):
            return frame
        frame = frame.with_id(self._next_id())
        if len(self._backlog) == self._backlog.maxlen:
            self._dropped = frame_key(self._backlog[0].id)
        self._backlog.append(frame)
        for deliver in self._subscribers:
            deliver(frame)
        return frame

    async def publish_many(self, frames: Sequence[Frame]) -> list[Frame]:
        return [await self.publish(frame) for frame in frames]

    async def subscribe(self, deliver: Deliver) -> Coroutine[Any, Any, None]:
        self._subscribers.add(deliver)
        return self._subscribed(deliver)

    async def _subscribed(self, deliver: Deliver) -> None:
        try:
            await self._closed.wait()
        finally:
            self._subscribers.discard(deliver)

    async def since(self, frame_id: str) -> list[Frame] | None:
        key = _parse(frame_id)
        if key is None or key < self._dropped or key > self._last:
            return None
        return [f for f in self._backlog if frame_key(f.id) > key]

    async def close(self) -> None:
        self._closed.set()  # the end of each subscription
        self._subscribers.clear()


async def _done(frame: Frame) -> Frame:
    return frame


def _parse(frame_id: str) -> tuple[int, int] | None:
    try:
        return frame_key(frame_id)
    except ValueError:
        return None


class _Seen:
    """The tags of the frames delivered lately: a frame published again is dropped."""

    def __init__(self, size: int = 10_000) -> None:
        self._order: deque[bytes] = deque()
        self._tags: set[bytes] = set()
        self._size = size

    def first_time(self, tag: bytes | None) -> bool:
        if tag is None:
            return True
        if tag in self._tags:
            return False
        self._tags.add(tag)
        self._order.append(tag)
        if len(self._order) > self._size:
            self._tags.discard(self._order.popleft())
        return True


# What decoding a message that is not a frame raises (its JSON, a key, a time, the UTF-8).
_NOT_A_FRAME = (ValueError, KeyError, TypeError)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBus:
    """Pub/sub carries live frames to every worker; a capped stream keeps the backlog
    `?since=` replays from, and a worker cut off from Redis catches up from it.

    A Redis restarted without persistence loses the frames its readers had not read yet.
    Each worker notices that with its next publish (its marker key is gone with the data,
    checked in the same script as the XADD) and publishes its frames of the last
    `replay_s` seconds again before it; readers drop the copies they already delivered
    (every frame carries a unique tag)."""

    def __init__(self, redis: Redis, backlog: int = 1000, replay_s: float = 30.0) -> None:
        self._redis = redis
        self._backlog = backlog
        self._replay_s = replay_s
        self._closed = asyncio.Event()
        self._marker = f"{BACKLOG_STREAM}:writer:{uuid.uuid4().hex}"
        self._keys = [BACKLOG_STREAM, self._marker, FRAMES_CHANNEL]  # _PUBLISH's
        self._marked = False
        self._recent: deque[tuple[float, str, bytes]] = deque()  # (when, tag, frame)
        self._line = RedisLine(redis)  # publishes: on a call's path
        # Each subscription's news of its connection: the error it ended with; None: closed.
        self._endings: set[asyncio.Queue[BaseException | None]] = set()

    async def publish(self, frame: Frame) -> Frame:
        return await self.publish_now(frame)

    def publish_now(self, frame: Frame) -> Coroutine[Any, Any, Frame]:
        """`publish`, its command written before this returns (when the bus's connection
        is open): a pop goes out the moment it is known, however busy the loop."""
        tag, encoded = frame.tag, frame.encode()
        return self._numbered(frame, tag, encoded, self._appending(tag, encoded))

    async def _numbered(
        self, frame: Frame, tag: str, encoded: bytes, appending: Coroutine[Any, Any, list[Any]]
    ) -> Frame:
        frame_id = await self._appended(appending)
        if frame_id is None:
            # Redis lost its data since our last publish: what readers may have missed first.
            now = time.monotonic()
            again = [(t, f) for at, t, f in self._recent if now - at <= self._replay_s]
            if again:  # (an idle day also lets the marker expire: nothing to say then)
                log.warning("realtime frames: Redis lost its data; publishing %d again", len(again))
            self._marked = False
            for old_tag, old_frame in again:
                await self._appended(self._appending(old_tag, old_frame))
            frame_id = await self._appended(self._appending(tag, encoded))
        return self._remember(frame, tag, encoded, frame_id)

    async def publish_many(self, frames: Sequence[Frame]) -> list[Frame]:
        if not frames:
            return []
        if not self._marked:  # the first publish makes this writer's marker
            return [await self.publish(frames[0]), *await self.publish_many(frames[1:])]
        encoded = [(frame.tag, frame.encode()) for frame in frames]
        calls: list[tuple[list[str], list[Arg]]] = [
            (self._keys, [self._backlog, "0", body, tag]) for tag, body in encoded
        ]
        ids = await self._line.evalsha_many(_PUBLISH, calls)
        published: list[Frame] = []
        for i, (frame, (tag, body), frame_id) in enumerate(zip(frames, encoded, ids, strict=True)):
            if frame_id is None:
                # Redis lost its data (the frames after this one were refused as well):
                # `publish` says again what readers may have missed, then the rest go.
                return published + [await self.publish(f) for f in frames[i:]]
            published.append(self._remember(frame, tag, body, frame_id))
        return published

    def _remember(self, frame: Frame, tag: str, encoded: bytes, frame_id: Any) -> Frame:
        """The published frame with its id, kept for `replay_s` to publish again."""
        now = time.monotonic()
        self._recent.append((now, tag, encoded))
        while self._recent and now - self._recent[0][0] > self._replay_s:
            self._recent.popleft()
        return frame.with_id(_text(frame_id))

    def _appending(self, tag: str, encoded: bytes) -> Coroutine[Any, Any, list[Any]]:
        """The frame's XADD and PUBLISH, written now where the line can (`evalsha_now`)."""
        create = "0" if self._marked else "1"
        return self._line.evalsha_now(
            _PUBLISH, [(self._keys, [self._backlog, create, encoded, tag])]
        )

    async def _appended(self, appending: Coroutine[Any, Any, list[Any]]) -> Any:
        """The new entry's id, or None when the marker is gone (Redis lost its data)."""
        (frame_id,) = await appending
        self._marked = self._marked or frame_id is not None
        return frame_id

    async def subscribe(self, deliver: Deliver) -> Coroutine[Any, Any, None]:
        newest: Any = await self._redis.xrevrange(BACKLOG_STREAM, count=1)
        return self._subscribed(deliver, _text(newest[0][0]) if newest else "0-0")

    async def _subscribed(self, deliver: Deliver, last: str) -> None:
        """Live frames are handed on from the connection's callback as they are read. Cut
        off, the subscription reads the backlog on from `last` once Redis is back, and holds
        the live ones read meanwhile until it has: frames come late, in order, not twice."""
        outage = Outage("realtime frames: Redis", log)
        seen = _Seen()
        held: list[bytes] | None = None  # None: live; else what came while catching up

        def take(frame_id: str, tag: bytes | None, body: bytes) -> None:
            nonlocal last
            last = frame_id
            if seen.first_time(tag):
                try:
                    frame = Frame.decode(body, frame_id)
                except _NOT_A_FRAME:  # skipped alone: it must not end the subscription
                    log.error("realtime frames: skipped %s, not a frame: %r", frame_id, body[:200])
                    return
                deliver(frame)

        def message_taken(message: bytes) -> None:
            # As _PUBLISH sends it: the id, the tag and the frame.
            try:
                frame_id, tag, body = message.split(b" ", 2)
                read_id = frame_id.decode()
            except ValueError:
                log.error(
                    "realtime frames: skipped a message that is not a frame: %r", message[:200]
                )
                return
            take(read_id, tag, body)

        def pushed(message: list[Any] | BaseException) -> None:
            if isinstance(message, BaseException):
                ending.put_nowait(message)
            elif held is not None:
                held.append(message[2])
            else:
                message_taken(message[2])

        ending: asyncio.Queue[BaseException | None] = asyncio.Queue()
        line = RedisLine(self._redis, pushed=pushed)
        self._endings.add(ending)
        pause, behind = 0.1, False
        try:
            while not self._closed.is_set():
                try:
                    held = [] if behind else None
                    await line.execute("SUBSCRIBE", FRAMES_CHANNEL)
                    if behind:
                        # Published while this worker was cut off: read from the backlog.
                        rows: Any = await self._redis.xrange(BACKLOG_STREAM, min=f"({last}")
                        for raw_id, fields in rows:
                            take(_text(raw_id), fields.get(b"u"), fields.get(b"f", b""))
                        for message in held or ():
                            message_taken(message)
                        held = None
                    outage.ok()
                    pause, behind = 0.1, False
                    ended = await ending.get()
                    if ended is not None:
                        raise ended
                except (RedisError, OSError) as exc:
                    reraise_if_cancelled()
                    outage.failed(exc)
                    behind = True
                    await line.close()
                    while not ending.empty():  # what closing that connection told
                        ending.get_nowait()
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, RETRY_MAX_S)
        finally:
            self._endings.discard(ending)
            await line.close()

    async def since(self, frame_id: str) -> list[Frame] | None:
        key = _parse(frame_id)
        if key is None:
            return None
        try:
            info: Any = await self._redis.xinfo_stream(BACKLOG_STREAM)
        except ResponseError:  # no stream yet: nothing was ever published
            return [] if key == (0, 0) else None
        deleted = frame_key(_text(info["max-deleted-entry-id"]))
        first = info.get("first-entry")
        first_key = frame_key(_text(first[0])) if first else None
        if key < deleted:
            return None  # frames after `frame_id` were trimmed away
        if first_key is not None and key < first_key and key != deleted:
            return None  # an id from before this backlog began (Redis was reset)
        if key > frame_key(_text(info["last-generated-id"])):
            return None  # an id from another backlog
        # A copy of a frame the socket already had (a retried publish) may come after
        # `frame_id`: the tags of what it was sent lately are dropped as well.
        earlier = f"{max(key[0] - int(self._replay_s * 1000), 0)}-0"
        sent: Any = await self._redis.xrange(BACKLOG_STREAM, min=earlier, max=frame_id)
        seen = _Seen()
        for _, fields in sent:
            seen.first_time(fields.get(b"u"))
        rows: Any = await self._redis.xrange(BACKLOG_STREAM, min=f"({frame_id}")
        return [
            Frame.decode(fields[b"f"], _text(raw_id))
            for raw_id, fields in rows
            if seen.first_time(fields.get(b"u"))
        ]

    async def close(self) -> None:
        """Subscriptions end at once."""
        self._closed.set()
        for ending in self._endings:
            ending.put_nowait(None)
        await self._line.close()
