"""`callcard telephony`'s way into the call-event stream, against a real redis-server that
the test stops and starts: nothing dropped, nothing reordered, while Redis is away, across
a restart of the sender, and when Redis comes back without its data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from support.restartable_redis import restartable_redis
from support.waiting import wait_for

from crm_api.platform.realtime.spool import SpooledAppender

STREAM = "test:events"


async def in_stream(url: str, stream: str = STREAM) -> list[int]:
    client = aredis.Redis.from_url(url)
    try:
        rows: Any = await client.xrange(stream)
    finally:
        await client.aclose()
    return [json.loads(fields[b"e"])["n"] for _, fields in rows]


async def test_events_wait_in_order_in_memory_then_on_disk_until_redis_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with restartable_redis(tmp_path / "redis", persistent=True) as server:
        client = aredis.Redis.from_url(server.url)
        spool = SpooledAppender(client, STREAM, tmp_path / "spool", memory_limit=5)
        await spool.start()
        for n in range(3):
            spool.add({"n": n})
        await spool.drained()

        await server.stop()
        for n in range(3, 60):
            spool.add({"n": n})  # never waits, never fails
        await wait_for(lambda: _true(spool.spooled > 0))  # beyond memory: on disk
        assert list((tmp_path / "spool").glob("*.jsonl"))
        await server.start()
        await spool.drained()
        assert await in_stream(server.url) == list(range(60))
        assert not list((tmp_path / "spool").glob("*.jsonl"))

        # Stopped while Redis is away: what is left waits on disk for the next run.
        await server.stop()
        for n in range(60, 70):
            spool.add({"n": n})
        await spool.stop(within_s=0.5)
        await client.aclose()
        await server.start()
        client = aredis.Redis.from_url(server.url)
        again = SpooledAppender(client, STREAM, tmp_path / "spool", memory_limit=5)
        await again.start()
        again.add({"n": 70})
        await again.drained()
        await again.stop()
        await client.aclose()
        assert await in_stream(server.url) == list(range(71))
    # One line as each outage began; one as the first ended (the second outlived its sender).
    said = [r.getMessage() for r in caplog.records if "test:events: Redis" in r.getMessage()]
    assert (sum("unavailable" in m for m in said), sum("back after" in m for m in said)) == (2, 1)


async def test_events_redis_lost_are_sent_again_before_the_next(tmp_path: Path) -> None:
    async with restartable_redis(tmp_path / "redis", persistent=False) as server:
        client = aredis.Redis.from_url(server.url)
        spool = SpooledAppender(client, STREAM, tmp_path / "spool")
        await spool.start()
        for n in range(10):
            spool.add({"n": n})
        await spool.drained()
        await server.stop()  # without persistence: the stream is gone with it
        await server.start()
        spool.add({"n": 10})
        await spool.drained()
        await spool.stop()
        await client.aclose()
        assert await in_stream(server.url) == list(range(11))


async def _true(value: bool) -> bool:
    return value


async def test_routed_events_keep_their_order_in_each_stream_through_the_disk(
    tmp_path: Path,
) -> None:
    """Routed (as the call partitions are), each stream gets its events in order, from
    memory and from the disk alike, and again after Redis lost them."""
    streams = [f"{STREAM}:{p}" for p in range(2)]

    def route(event: dict[str, Any]) -> str:
        return streams[event["n"] % 3 % 2]

    async with restartable_redis(tmp_path / "redis", persistent=False) as server:
        client = aredis.Redis.from_url(server.url)
        spool = SpooledAppender(client, STREAM, tmp_path / "spool", memory_limit=5, route=route)
        await spool.start()
        for n in range(10):
            spool.add({"n": n})
        await spool.drained()
        await server.stop()  # without persistence: both streams go with it
        for n in range(10, 30):
            spool.add({"n": n})  # on disk
        await server.start()
        await spool.drained()
        await spool.stop()
        await client.aclose()
        for p, stream in enumerate(streams):
            expected = [n for n in range(30) if n % 3 % 2 == p]
            assert await in_stream(server.url, stream) == expected
