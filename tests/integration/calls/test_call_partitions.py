"""Several API workers on one call-event stream: three real `callcard api` processes share
its partitions, calls arrive at 50 a second (each call's events interleaved with the
others'), every call is handled in order by one worker and lands once, an operator whose
socket is on one worker gets every pop of calls the others handled exactly once, a socket
resumes on another worker, and a worker killed with -9 hands its partitions over."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.call_events import answered_call, appending_sink
from support.factories import Actor
from support.metrics import scrape
from support.server import ApiProcess, api_process
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.models import Call
from crm_api.calls.pipeline import CallEventSink
from crm_api.clients.timeline.models import CommKind, Communication
from crm_api.platform.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
PARTITIONS = 8
RATE = 50.0  # calls a second
OVERLAP = 10  # calls in progress at once: a call ends 10 starts after it began
CALLS = 50  # before the kill, and as many again through it


@pytest.fixture
def backend() -> str:
    return "postgres"


def ws_url(worker: ApiProcess) -> str:
    return worker.base_url.replace("http://", "ws://") + "/ws"


async def owned(workers: list[ApiProcess]) -> list[float]:
    return [
        (await scrape(w.base_url + "/metrics")).value("callcard_call_partitions_owned")
        for w in workers
    ]


async def shared_among(workers: list[ApiProcess]) -> bool:
    counts = await owned(workers)
    return sum(counts) == PARTITIONS and all(counts)


def caller_of(call_id: str) -> str:
    """A number of its own per call: each call makes its own card (two first calls from
    one new number at once would race for its card, which is not what this test is about)."""
    return f"+7916{int(call_id.replace('.', '')) % 10**7:07d}"


async def feed(sink: CallEventSink, call_ids: list[str]) -> None:
    """Calls start at RATE a second; each ends OVERLAP starts later, so the events of
    OVERLAP calls are interleaved in the stream."""
    calls = [
        answered_call(call_id, caller=caller_of(call_id)[1:], caller_e164=caller_of(call_id))
        for call_id in call_ids
    ]
    for tick in range(len(calls) + OVERLAP):
        if tick < len(calls):
            for event in calls[tick][:3]:  # start, recording, ringing
                await sink(event)
        if tick >= OVERLAP:
            for event in calls[tick - OVERLAP][3:]:  # answered, ended
                await sink(event)
        await asyncio.sleep(1 / RATE)


async def landed(db: async_sessionmaker[AsyncSession]) -> tuple[Counter[str], int]:
    async with db() as session:
        states = Counter((await session.scalars(select(Call.state))).all())
        logged = await session.scalar(select(func.count()).select_from(Communication))
    return states, int(logged or 0)


async def all_landed(db: async_sessionmaker[AsyncSession], n: int) -> bool:
    states, logged = await landed(db)
    return states == Counter({"ended": n}) and logged == n


async def journal(db: async_sessionmaker[AsyncSession]) -> Counter[tuple[str, int]]:
    """Each call of the journal with its communications on the caller's card (a card per
    call here): (PBX call id, communications), counted."""
    async with db() as session:
        rows = await session.execute(
            select(Call.pbx_call_id, func.count(Communication.id))
            .outerjoin(
                Communication,
                (Communication.client_id == Call.client_id) & (Communication.kind == CommKind.CALL),
            )
            .group_by(Call.id, Call.pbx_call_id)
        )
        return Counter((str(r[0]), int(r[1])) for r in rows)


async def frames_until(sock: Socket, type_: str, call_ids: list[str]) -> list[dict]:
    """The socket's frames until `type_` came for every call in `call_ids`."""
    want = set(call_ids) - {f["data"].get("call_id") for f in sock.frames if f["type"] == type_}
    while want:
        frame = await sock.next_of(type_, within=30)
        want.discard(frame["data"]["call_id"])
    return sock.frames


def per_call(frames: list[dict], type_: str) -> Counter[str]:
    return Counter(f["data"]["call_id"] for f in frames if f["type"] == type_)


def failed_runs(log: Path) -> list[str]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [x["message"] for x in lines if x["level"] in ("ERROR", "CRITICAL")]


@pytest.mark.timeout(300)  # three API processes start one after the other
async def test_three_workers_handle_each_call_in_order_once_and_fan_out_every_pop_once(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    redis = aredis.Redis.from_url(str(settings.redis_url))
    sink = appending_sink(redis, PARTITIONS)  # as `callcard telephony`
    env = {
        "CALLCARD_REDIS_URL": str(settings.redis_url),
        "CALLCARD_RECORDINGS_DIR": str(tmp_path),
        "CALLCARD_CALL_PARTITIONS": str(PARTITIONS),
        "CALLCARD_CALL_PARTITION_LEASE_S": "2.0",
        "CALLCARD_LOG_FORMAT": "json",
    }
    logs = [tmp_path / f"api-{n}.log" for n in "abc"]
    manager, supervisor = actors[Role.MANAGER], actors[Role.SUPERVISOR]
    first = [f"1796000000.{n}" for n in range(CALLS)]
    second = [f"1796000100.{n}" for n in range(CALLS)]
    async with (
        api_process(settings.database_url, log=logs[0], **env) as a,
        api_process(settings.database_url, log=logs[1], **env) as b,
        api_process(settings.database_url, log=logs[2], **env) as c,
    ):
        await wait_for(lambda: shared_among([a, b, c]), within=30)
        async with (
            open_socket(ws_url(a), manager.token) as on_a,
            open_socket(ws_url(b), supervisor.token) as on_b,
        ):
            mine, watching = Socket(on_a), Socket(on_b)
            await mine.next_of("hello")
            await watching.next_of("hello")
            await feed(sink, first)
            await wait_for(lambda: all_landed(db, len(first)), within=60)
            frames = await frames_until(mine, "call.ended", first)
            seen = await frames_until(watching, "call.ended", first)
        # Exactly once, whichever worker handled the call: one pop and one end per call.
        for got in (frames, seen):
            assert per_call(got, "call.ringing") == Counter({c: 1 for c in first})
            assert per_call(got, "call.ended") == Counter({c: 1 for c in first})
        handled = [
            (await scrape(w.base_url + "/metrics")).total("callcard_call_events_handled_total")
            for w in (a, b, c)
        ]
        assert sum(handled) == 5 * len(first)  # no event handled twice: no retries
        assert all(handled), handled  # and every worker had its share
        last_seen = frames[-1]["id"]

        # A worker dies mid-stream: the others take its partitions and every call lands once,
        # and the supervisor's socket on a survivor gets each call's pop and end once.
        async with open_socket(ws_url(a), supervisor.token) as on_a:
            live = Socket(on_a)
            await live.next_of("hello")
            feeding = asyncio.create_task(feed(sink, second))
            await asyncio.sleep(len(second) / RATE / 2)
            c.kill()
            assert await c.process.wait() == -9
            await feeding
            await wait_for(lambda: shared_among([a, b]), within=30)
            await wait_for(lambda: all_landed(db, len(first) + len(second)), within=60)
            # A call's frames go out in order: a second pop would have come before its end.
            await frames_until(live, "call.ended", second)
        assert await journal(db) == Counter({(c, 1): 1 for c in first + second})

        # The manager's socket comes back on the other worker and resumes where it was.
        async with open_socket(ws_url(b), manager.token, since=last_seen) as again:
            resumed = Socket(again)
            await resumed.next_of("hello")
            replayed = await frames_until(resumed, "call.ended", second)
        for got in (live.frames, replayed):
            assert per_call(got, "call.ringing") == Counter({c: 1 for c in second})
            assert per_call(got, "call.ended") == Counter({c: 1 for c in second})
    await redis.aclose()
    for log in logs[:2]:
        assert failed_runs(log) == [], log.name
