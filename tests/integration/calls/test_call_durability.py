"""Nothing lost, nothing doubled: the database goes away in the middle of calls, and the
API worker is killed (SIGKILL) while it holds unacknowledged call events. PostgreSQL is
reached through a proxy the test cuts (connections reset, new ones refused), Redis and
the API are real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.call_events import answered_call, appending_sink, call_event_groups, call_sink
from support.factories import Actor
from support.server import api_process, running_api
from support.servers import PgServer
from support.tcp_proxy import CuttableProxy
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.models import Call
from crm_api.calls.partitions import PartitionedStream
from crm_api.calls.pipeline import CallEventSink, start_call_events
from crm_api.clients.timeline.models import CommKind, Communication
from crm_api.platform.realtime import streams
from crm_api.platform.realtime.streams import EventStream
from crm_api.platform.settings import Settings
from telephony import events as ev

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

PARTITIONS = Settings.model_fields["call_partitions"].default  # the API processes'
FIRST = answered_call("1795400001.0", caller="89161112233", caller_e164="+79161112233")
SECOND = answered_call("1795400002.0", caller="+7 (926) 444-55-66", caller_e164="+79264445566")


@pytest.fixture
async def db_link(pg_server: PgServer) -> AsyncIterator[CuttableProxy]:
    async with CuttableProxy(pg_server.host, pg_server.port) as proxy:
        yield proxy


def through(url: str, proxy: CuttableProxy) -> str:
    host, port = proxy.target
    return url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/")


@pytest.fixture
def proxied(
    settings: Settings, db_link: CuttableProxy, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings with the database through the proxy; a failed run is retried soon."""
    monkeypatch.setattr(streams, "RETRY_PAUSE_S", 0.2)
    return settings.model_copy(update={"database_url": through(settings.database_url, db_link)})


async def feed(sink: CallEventSink, events: list[ev.CallEvent]) -> None:
    for event in events:
        await sink(event)


async def waiting_events(redis: aredis.Redis) -> int:
    """Read and not acknowledged, over the stream's partitions."""
    groups = await call_event_groups(redis, PARTITIONS)
    return sum(int(group["pending"]) for group in groups)


async def drained(redis: aredis.Redis) -> bool:
    return await waiting_events(redis) == 0


async def _said(log: Path, line: str) -> bool:
    """The process has written `line` to its log (its handler tried and failed, say)."""
    return line in await asyncio.to_thread(log.read_text)


async def _handler_failed(consumers: list[EventStream]) -> bool:
    """A run of events failed on its dependency (the database) and waits to be retried."""
    return any(
        reader.status.handler_error
        for stream in consumers
        if isinstance(stream, PartitionedStream)
        for reader in stream.readers()
    )


async def landed(db: async_sessionmaker[AsyncSession]) -> dict[str, tuple]:
    """Each call's state and its communications (count, status, talk time)."""
    async with db() as session:
        rows = await session.execute(
            select(
                Call.pbx_call_id,
                Call.state,
                Call.disposition,
                func.count(Communication.id),
                func.max(Communication.status),
            )
            .outerjoin(
                Communication,
                (Communication.client_id == Call.client_id) & (Communication.kind == CommKind.CALL),
            )
            .group_by(Call.pbx_call_id, Call.state, Call.disposition)
        )
        return {r[0]: tuple(r[1:]) for r in rows}


BOTH_LANDED_ONCE = {
    "1795400001.0": ("ended", "answered", 1, "answered"),
    "1795400002.0": ("ended", "answered", 1, "answered"),
}


async def test_a_database_outage_mid_call_pops_the_card_and_loses_and_doubles_nothing(
    settings: Settings,
    proxied: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    db_link: CuttableProxy,
) -> None:
    redis = aredis.Redis.from_url(str(settings.redis_url))
    async with (
        running_api(proxied, features=(start_call_events,)) as api,
        open_socket(api.ws_url, actors[Role.MANAGER].token) as conn,
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        sink = call_sink(api.app.state.services)
        await feed(sink, FIRST[:2])  # the call enters the dialplan: its card is found
        await wait_for(lambda: _ringing(db, "1795400001.0"))

        await db_link.cut()  # the database restarts while the phone rings
        await feed(sink, FIRST[2:3])
        # The card was read at the start: it pops with the database down.
        pop = await sock.next_of("call.ringing")
        assert pop["data"]["call_id"] == "1795400001.0"
        assert pop["data"]["caller"] == "+79161112233" and pop["data"]["ringing"] == ["101"]
        assert pop["data"]["client"]["id"] is not None
        await feed(sink, FIRST[3:] + SECOND)
        await wait_for(lambda: waiting_events(redis))
        services = api.app.state.services
        await wait_for(lambda: _handler_failed(services.links.consumers))
        manager = actors[Role.MANAGER].user.id
        came = await sock.settle(services.hub, manager)
        assert not [f for f in came if f["type"] in ("call.ended", "call.ringing")]
        assert await waiting_events(redis) > 0

        await db_link.restore()
        while len(_calls_in(sock.frames, "call.ended")) < 2:
            await sock.next_of("call.ended", within=20)
        await wait_for(lambda: drained(redis))
        await sock.settle(services.hub, manager)  # and any frame of the last runs
        frames = sock.frames
        assert _calls_in(frames, "call.ended") == ["1795400001.0", "1795400002.0"]
        # The second call popped once its start was written; the first did not pop again.
        assert _calls_in(frames, "call.ringing") == ["1795400001.0", "1795400002.0"]
    assert await landed(db) == BOTH_LANDED_ONCE
    await redis.aclose()


async def test_a_pop_sent_ahead_by_a_worker_that_stopped_before_writing_the_ring_comes_once(
    db_link: CuttableProxy,
    settings: Settings,
    proxied: Settings,
    db: async_sessionmaker[AsyncSession],
    actors: dict[Role, Actor],
) -> None:
    """The pop goes out before the ring is written; the worker stops before it could write
    it, so the next worker handles the ring again and pops it again: readers drop that
    copy, and the operator sees one pop."""
    manager = actors[Role.MANAGER]
    call_id = FIRST[0].call_id
    async with (
        running_api(settings) as front,  # the operator's worker: sockets only
        open_socket(front.ws_url, manager.token) as conn,
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        async with running_api(proxied, features=(start_call_events,)) as first:
            await feed(call_sink(first.app.state.services), FIRST[:2])
            await wait_for(lambda: _ringing(db, call_id))
            await db_link.cut()
            await feed(call_sink(first.app.state.services), FIRST[2:3])
            assert (await sock.next_of("call.ringing"))["data"]["call_id"] == call_id
            await wait_for(lambda: _handler_failed(first.app.state.services.links.consumers))
        await db_link.restore()
        async with running_api(settings, features=(start_call_events,)) as second:
            await feed(call_sink(second.app.state.services), FIRST[3:])
            await sock.next_of("call.ended", within=30)
        await sock.settle(front.app.state.services.hub, manager.user.id)
    assert _calls_in(sock.frames, "call.ringing") == [call_id]
    assert (await landed(db))[call_id] == BOTH_LANDED_ONCE[call_id]


async def test_an_api_worker_killed_with_unacknowledged_events_loses_and_doubles_nothing(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    db_link: CuttableProxy,
    tmp_path: Path,
) -> None:
    redis = aredis.Redis.from_url(str(settings.redis_url))
    # What `callcard telephony` does: it only appends to the stream.
    sink = appending_sink(redis, PARTITIONS)
    url = through(settings.database_url, db_link)
    env = {"CALLCARD_REDIS_URL": str(settings.redis_url), "CALLCARD_RECORDINGS_DIR": str(tmp_path)}

    log = tmp_path / "first.log"
    async with api_process(url, log=log, **env) as first:
        await feed(sink, FIRST[:3])
        await wait_for(lambda: _ringing(db, "1795400001.0"))
        await db_link.cut()
        await feed(sink, FIRST[3:] + SECOND)
        # The worker has read them and tried to commit (its log says so): they wait,
        # unacknowledged.
        await wait_for(lambda: waiting_events(redis))
        await wait_for(lambda: _said(log, "the event handler's storage unavailable"))
        first.kill()
        await first.process.wait()
    assert (await landed(db))["1795400001.0"][:2] == ("ringing", None)
    assert await waiting_events(redis) > 0

    await db_link.restore()
    async with api_process(url, log=tmp_path / "second.log", **env):
        await wait_for(lambda: _both_ended(db))
        await wait_for(lambda: drained(redis))
        # The adapter replays a call after its own reconnect: still one communication each.
        await feed(sink, FIRST + SECOND)
        await wait_for(lambda: drained(redis))
        assert await landed(db) == BOTH_LANDED_ONCE
    await redis.aclose()


def _calls_in(frames: list[dict], type_: str) -> list[str]:
    return sorted(f["data"]["call_id"] for f in frames if f["type"] == type_)


async def _ringing(db: async_sessionmaker[AsyncSession], call_id: str) -> bool:
    state = (await landed(db)).get(call_id)
    return state is not None and state[0] == "ringing"


async def _both_ended(db: async_sessionmaker[AsyncSession]) -> bool:
    return [s[0] for s in (await landed(db)).values()] == ["ended", "ended"]
