"""Fan-out of frames to every API worker, and the backlog a reconnecting socket resumes
from. In-process for the embedded default; Redis pub/sub and a capped stream when
CALLCARD_REDIS_URL is set."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from crm_api.platform.realtime.frames import Frame, frame_key

FRAMES_CHANNEL = "callcard:rt:frames"
BACKLOG_STREAM = "callcard:rt:backlog"


class Bus(Protocol):
    async def publish(self, frame: Frame) -> Frame:
        """Gives the frame its id, keeps it in the backlog and fans it out."""
        ...

    async def subscribe(self) -> AsyncIterator[Frame]:
        """Every frame published by any worker from the moment this returns."""
        ...

    async def since(self, frame_id: str) -> list[Frame] | None:
        """Frames after `frame_id`, or None when the backlog no longer reaches back."""
        ...

    async def close(self) -> None: ...


class InProcessBus:
    def __init__(self, backlog: int = 1000) -> None:
        self._backlog: deque[Frame] = deque(maxlen=backlog)
        self._subscribers: set[asyncio.Queue[Frame]] = set()
        self._last = (int(time.time() * 1000), 0)
        # The newest id that fell out of the backlog; at start, everything before now
        # (an id from a previous process cannot be resumed from).
        self._dropped = self._last

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    async def publish(self, frame: Frame) -> Frame:
        frame = frame.with_id(self._next_id())
        if len(self._backlog) == self._backlog.maxlen:
            self._dropped = frame_key(self._backlog[0].id)
        self._backlog.append(frame)
        for queue in self._subscribers:
            queue.put_nowait(frame)
        return frame

    async def subscribe(self) -> AsyncIterator[Frame]:
        queue: asyncio.Queue[Frame] = asyncio.Queue()
        self._subscribers.add(queue)

        async def frames() -> AsyncIterator[Frame]:
            try:
                while True:
                    yield await queue.get()
            finally:
                self._subscribers.discard(queue)

        return frames()

    async def since(self, frame_id: str) -> list[Frame] | None:
        key = _parse(frame_id)
        if key is None or key < self._dropped or key > self._last:
            return None
        return [f for f in self._backlog if frame_key(f.id) > key]

    async def close(self) -> None:
        self._subscribers.clear()


def _parse(frame_id: str) -> tuple[int, int] | None:
    try:
        return frame_key(frame_id)
    except ValueError:
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBus:
    """Pub/sub carries live frames to every worker; a capped stream keeps the backlog."""

    def __init__(self, redis: Redis, backlog: int = 1000) -> None:
        self._redis = redis
        self._backlog = backlog

    async def publish(self, frame: Frame) -> Frame:
        provisional = frame.encode()
        frame_id = await self._redis.xadd(
            BACKLOG_STREAM, {"f": provisional}, maxlen=self._backlog, approximate=True
        )
        frame = frame.with_id(_text(frame_id))
        await self._redis.publish(FRAMES_CHANNEL, frame.encode())
        return frame

    async def subscribe(self) -> AsyncIterator[Frame]:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(FRAMES_CHANNEL)

        async def frames() -> AsyncIterator[Frame]:
            try:
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        yield Frame.decode(message["data"])
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.unsubscribe(FRAMES_CHANNEL)
                await pubsub.aclose()

        return frames()

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
        rows: Any = await self._redis.xrange(BACKLOG_STREAM, min=f"({frame_id}")
        return [Frame.decode(fields[b"f"]).with_id(_text(raw_id)) for raw_id, fields in rows]

    async def close(self) -> None:
        return None
