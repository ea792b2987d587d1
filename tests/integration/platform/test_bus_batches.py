"""A batch of frames through the Redis bus in one round trip (`publish_many`): the backlog
holds them in order, once each (a retried frame too), and a batch published after Redis
lost its data first says again what readers may have missed, as single publishes do; a
worker whose subscription a restart cut gets what was published meanwhile, once each.
Real Redis, restarted by the test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from support.restartable_redis import restartable_redis
from support.waiting import wait_for

from crm_api.platform.realtime.bus import FRAMES_CHANNEL, RedisBus
from crm_api.platform.realtime.frames import Audience, Frame, frame_key


def _frames(*ns: int) -> list[Frame]:
    audience = Audience(user_ids=frozenset({1}))
    return [Frame(type="task.due", data={"n": n}, audience=audience) for n in ns]


async def test_a_batch_reaches_a_reader_in_order_once_each(tmp_path: Path) -> None:
    async with restartable_redis(tmp_path / "redis", persistent=False) as server:
        client = aredis.Redis.from_url(server.url)
        bus = RedisBus(client)
        try:
            batch = _frames(1, 2, 3)
            published = [await bus.publish(batch[0]), *await bus.publish_many(batch[1:])]
            published += await bus.publish_many([*_frames(4, 5), batch[2]])  # 3 retried
            keys = [frame_key(f.id) for f in published]
            assert keys == sorted(keys) and len(set(keys)) == len(keys)
            backlog = await bus.since(published[0].id)
            assert backlog is not None and [f.data["n"] for f in backlog] == [2, 3, 4, 5]
        finally:
            await bus.close()
            await client.aclose()


async def test_a_batch_after_redis_lost_its_data_publishes_the_recent_frames_again(
    tmp_path: Path,
) -> None:
    async with restartable_redis(tmp_path / "redis", persistent=False) as server:
        client = aredis.Redis.from_url(server.url)
        bus = RedisBus(client)
        try:
            await bus.publish_many(_frames(1, 2))
            await bus.publish_many(_frames(3, 4))
            await server.stop()
            await server.start()
            with contextlib.suppress(RedisConnectionError):
                await client.ping()  # the connection Redis closed is found dead here
            await bus.publish_many(_frames(5, 6))
            backlog = await bus.since("0-0")
            assert backlog is not None and [f.data["n"] for f in backlog] == [1, 2, 3, 4, 5, 6]
        finally:
            await bus.close()
            await client.aclose()


Arrival = tuple[Frame, "asyncio.Task[object] | None"]  # a frame, and the task it came in


@contextlib.asynccontextmanager
async def _reading(
    url: str,
) -> AsyncIterator[tuple[aredis.Redis, RedisBus, asyncio.Queue[Arrival]]]:
    """A publisher, and a reader subscribed on the same Redis: what it is handed arrives
    in the queue."""
    client = aredis.Redis.from_url(url)
    publisher, reader = RedisBus(client), RedisBus(client)
    got: asyncio.Queue[Arrival] = asyncio.Queue()
    subscribed = await reader.subscribe(lambda f: got.put_nowait((f, asyncio.current_task())))
    subscription = asyncio.ensure_future(subscribed)

    async def listening() -> bool:
        return dict(await client.pubsub_numsub(FRAMES_CHANNEL))[FRAMES_CHANNEL.encode()] > 0

    try:
        await wait_for(listening)
        yield client, publisher, got
    finally:
        await publisher.close()
        await reader.close()
        await asyncio.wait_for(subscription, 5)  # closing the bus ends it
        await client.aclose()


async def _next(got: asyncio.Queue[Arrival], within_s: float = 5) -> Frame:
    return (await asyncio.wait_for(got.get(), within_s))[0]


async def test_a_subscriber_cut_off_by_a_restart_gets_each_frame_published_meanwhile(
    tmp_path: Path,
) -> None:
    async with (
        restartable_redis(tmp_path / "redis", persistent=True) as server,
        _reading(server.url) as (client, publisher, got),
    ):
        await publisher.publish(_frames(1)[0])
        first = await _next(got)
        await server.stop()
        # The subscription's connection ends with the server: the reader is cut off.
        await server.start()
        with contextlib.suppress(RedisConnectionError):
            await client.ping()
        await publisher.publish_many(_frames(2, 3))
        await publisher.publish(_frames(4)[0])
        rest = [await _next(got, 10) for _ in range(3)]
        assert [f.data["n"] for f in [first, *rest]] == [1, 2, 3, 4]
        with contextlib.suppress(TimeoutError):  # and nothing twice
            extra = await _next(got, 0.5)
            raise AssertionError(f"a frame came twice: {extra}")


async def test_a_frame_published_now_reaches_a_reader_before_its_publisher_awaits_it(
    redis_url: str,
) -> None:
    """The early pop: `publish_now` hands the frame to Redis before it returns, so a reader
    gets it however long the publisher's task waits for its turn; awaited, it gives the
    frame with the id the reader saw."""
    async with _reading(redis_url) as (_, publisher, got):
        await publisher.publish(_frames(1)[0])  # opens the publisher's connection
        assert (await _next(got)).data == {"n": 1}
        publishing = publisher.publish_now(_frames(2)[0])
        seen = await _next(got)
        assert seen.data == {"n": 2}
        assert (await publishing).id == seen.id


async def test_a_frame_is_handed_on_as_it_is_read_and_garbage_on_the_channel_is_skipped(
    redis_url: str,
) -> None:
    """A frame goes to `deliver` from the connection's own callback, in the turn of the
    loop that read it (no task is running then), not from a task woken for it; a message
    on the channel that is not a frame is skipped alone, and the next frame still comes."""
    async with _reading(redis_url) as (client, publisher, got):
        for garbage in (
            b"garbage",
            b"1-1 tag not json",
            b"1-2 tag {}\n{}",
            "1-3 t \xff".encode("latin-1"),
        ):
            await client.publish(FRAMES_CHANNEL, garbage)
        await publisher.publish(_frames(1)[0])
        frame, task = await asyncio.wait_for(got.get(), 5)
        assert frame.data == {"n": 1}
        assert task is None, f"handed on from a task ({task}), a turn of the loop later"
        assert got.empty()
