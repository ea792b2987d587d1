"""Durable event pipelines on real Redis Streams: acknowledged only after the handler
succeeded, retried after a failure, taken over from a consumer that died."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aredis

from crm_api.platform.realtime import streams
from crm_api.platform.realtime.streams import InProcessStream, RedisStream


async def _run_until(consumer, handler, done: asyncio.Event) -> None:
    """Consumes until `done`; `consume` returns only once every run in flight has finished
    (acknowledged or left pending), so what is pending afterwards is final."""
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.consume(handler, stop))
    try:
        await asyncio.wait_for(done.wait(), 15)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_failed_event_is_retried_and_acked_only_after_success(redis_url, monkeypatch) -> None:
    monkeypatch.setattr(streams, "RETRY_PAUSE_S", 0.05)
    client = aredis.Redis.from_url(redis_url, protocol=2)
    stream = RedisStream(client, f"test:{uuid.uuid4().hex}", consumer="a", block_ms=100)
    for n in range(3):
        await stream.add({"n": n, "text": "Звонок"})
    seen: list[int] = []
    delivered: list[tuple[int, bool]] = []
    failed_once = False
    done = asyncio.Event()

    async def handler(run: list[dict], *, again: bool) -> None:
        nonlocal failed_once
        delivered.extend((e["n"], again) for e in run)
        if any(e["n"] == 1 for e in run) and not failed_once:
            failed_once = True
            raise RuntimeError("database restarting")  # the whole run rolls back
        seen.extend(e["n"] for e in run)
        if len(seen) == 3:
            done.set()

    await _run_until(stream, handler, done)
    assert seen == [0, 1, 2]
    # The retry is told it is one: what the failed run sent after its commit goes again.
    assert delivered[0] == (0, False) and delivered[-1] == (2, True)
    assert (1, False) in delivered and (1, True) in delivered
    assert await stream.pending() == 0
    await client.aclose()


async def test_events_of_a_dead_consumer_are_claimed_by_another(redis_url) -> None:
    client = aredis.Redis.from_url(redis_url, protocol=2)
    name = f"test:{uuid.uuid4().hex}"
    dead = RedisStream(client, name, consumer="dead")
    await dead.ensure_group()
    await dead.add({"n": 1})
    # The dead consumer read the event and never acknowledged it.
    await client.xreadgroup(dead.group, "dead", {name: ">"}, count=10)
    assert await dead.pending() == 1
    # It claims the event once the event has been idle 50 ms (it keeps asking).
    alive = RedisStream(client, name, consumer="alive", claim_idle_ms=50, block_ms=100)
    got: list[tuple[int, bool]] = []
    done = asyncio.Event()

    async def handler(run: list[dict], *, again: bool) -> None:
        got.extend((e["n"], again) for e in run)
        done.set()

    await _run_until(alive, handler, done)
    assert got == [(1, True)]  # the dead one may have written it, and died before the rest
    assert await alive.pending() == 0
    await client.aclose()


async def test_in_process_stream_keeps_order_and_retries(monkeypatch) -> None:
    monkeypatch.setattr(streams, "RETRY_PAUSE_S", 0.01)
    stream = InProcessStream("calls")
    for n in range(4):
        await stream.add({"n": n})
    seen: list[int] = []
    attempts: list[bool] = []
    done = asyncio.Event()

    async def handler(run: list[dict], *, again: bool) -> None:
        attempts.append(again)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        seen.extend(e["n"] for e in run)
        if len(seen) == 4:
            done.set()

    await _run_until(stream, handler, done)
    assert seen == [0, 1, 2, 3] and attempts == [False, True]


async def test_in_process_stream_backlog_counts_the_run_in_hand_as_pending() -> None:
    stream = InProcessStream("calls")
    for n in range(2):
        await stream.add({"n": n})
    in_hand, release, done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def handler(run: list[dict], *, again: bool) -> None:
        in_hand.set()
        await release.wait()
        done.set()

    async def check() -> None:
        await in_hand.wait()
        backlog = await stream.backlog()
        assert (backlog.pending, backlog.unread) == (2, 0)
        release.set()

    checking = asyncio.create_task(check())
    await _run_until(stream, handler, done)
    await checking
    backlog = await stream.backlog()
    assert (backlog.pending, backlog.unread) == (0, 0)


async def test_keyed_events_keep_their_order_and_one_slow_key_holds_up_no_other(
    redis_url, monkeypatch
) -> None:
    monkeypatch.setattr(streams, "RETRY_PAUSE_S", 0.05)
    client = aredis.Redis.from_url(redis_url, protocol=2)
    stream = RedisStream(
        client, f"test:{uuid.uuid4().hex}", consumer="a", block_ms=100, key=lambda e: e["call"]
    )
    for n in range(4):
        for call in ("slow", "fast"):
            await stream.add({"call": call, "n": n})
    seen: list[tuple[str, int]] = []
    release = asyncio.Event()
    failed_once = False
    done = asyncio.Event()

    async def handler(run: list[dict], *, again: bool) -> None:
        nonlocal failed_once
        assert len({e["call"] for e in run}) == 1, "a run holds one key"
        if run[0]["call"] == "slow":
            await release.wait()
            if not failed_once:
                failed_once = True
                raise RuntimeError("database restarting")  # retried in order
        seen.extend((e["call"], e["n"]) for e in run)
        if [e for e in seen if e[0] == "fast"] == [("fast", n) for n in range(4)]:
            release.set()  # every "fast" event went by while "slow" was stuck
        if len(seen) == 8:
            done.set()

    await _run_until(stream, handler, done)
    assert seen[:4] == [("fast", n) for n in range(4)]
    assert [e for e in seen if e[0] == "slow"] == [("slow", n) for n in range(4)]
    assert await stream.pending() == 0
    await client.aclose()


async def test_unreadable_entries_are_dropped_and_the_rest_go_on(redis_url) -> None:
    client = aredis.Redis.from_url(redis_url, protocol=2)
    stream = RedisStream(
        client, f"test:{uuid.uuid4().hex}", consumer="a", block_ms=100, key=lambda e: e["call"]
    )
    await stream.ensure_group()
    await client.xadd(stream.name, {"e": "{not json"})  # written by something else
    await client.xadd(stream.name, {"other": "field"})
    await client.xadd(stream.name, {"other": "e"})  # "e" as a value, not as the field
    await client.xadd(stream.name, {"e": '["no", "key"]'})
    await stream.add({"call": "a", "n": 1})
    got: list[dict] = []
    done = asyncio.Event()

    async def handler(run: list[dict], *, again: bool) -> None:
        got.extend(run)
        done.set()

    await _run_until(stream, handler, done)
    assert got == [{"call": "a", "n": 1}]
    assert await stream.pending() == 0
    await client.aclose()


async def test_events_read_while_a_run_is_in_flight_pass_it_but_never_its_own_key(
    redis_url, monkeypatch
) -> None:
    monkeypatch.setattr(streams, "RETRY_PAUSE_S", 0.05)
    client = aredis.Redis.from_url(redis_url, protocol=2)
    stream = RedisStream(
        client, f"test:{uuid.uuid4().hex}", consumer="a", block_ms=50, key=lambda e: e["call"]
    )
    await stream.add({"call": "slow", "n": 0})
    seen: list[tuple[str, int]] = []
    slow_started, release, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    failed_once = False

    async def handler(run: list[dict], *, again: bool) -> None:
        nonlocal failed_once
        if run[0]["call"] == "slow" and run[0]["n"] == 0:
            slow_started.set()
            await release.wait()
            if not failed_once:
                failed_once = True
                raise RuntimeError("database restarting")
        seen.extend((e["call"], e["n"]) for e in run)
        if ("fast", 0) in seen:
            release.set()
        if len(seen) == 3:
            done.set()

    async def later_events() -> None:
        await slow_started.wait()  # added after the slow run was read and started
        await stream.add({"call": "slow", "n": 1})
        await stream.add({"call": "fast", "n": 0})

    feeder = asyncio.create_task(later_events())
    await _run_until(stream, handler, done)
    await feeder
    # "fast" rang while "slow" was stuck; "slow" kept its order through the retry.
    assert seen == [("fast", 0), ("slow", 0), ("slow", 1)]
    assert failed_once
    assert await stream.pending() == 0
    await client.aclose()
