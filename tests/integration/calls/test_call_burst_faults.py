"""A burst of calls from the real captures through the production topology — the AMI
simulator, `callcard telephony` as its own process, Redis (a private redis-server the
test stops and starts), PostgreSQL, the API's call-event consumer — with one fault in the
middle of it. After the burst settles, every call the PBX reported is in the journal
exactly once, none is left "active", and a supervisor's socket got each `call.ended`
exactly once (a manager's, each call that rang their phone). Each test prints its row
of the fault table (logged / lost / stuck)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.peers import free_port
from support.restartable_redis import RestartableRedis, restartable_redis
from support.server import CallcardProcess, RunningApi, callcard_process, running_api
from support.servers import PgServer
from support.tcp_proxy import CuttableProxy
from support.waiting import wait_for
from support.ws import open_socket

from crm_api.accounts.models import Role
from crm_api.calls.models import Call
from crm_api.calls.pipeline import start_call_events
from crm_api.clients.timeline.models import CommKind, Communication
from crm_api.messages.email import start_email
from crm_api.platform.runtime import Feature
from crm_api.platform.settings import Settings
from crm_api.tasks.reminders import start_reminders
from telephony.ami.simulator import CALL_SCENARIOS, AmiSimulator, prepare

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

SCENARIOS = tuple(s for s in CALL_SCENARIOS if s != "click-to-call")
CALLS = 180
RATE = 15.0  # calls started per second: a 12 s burst
PACE = 0.008  # seconds between a call's events: each call lasts about a second
FAULT_AFTER = 50  # calls started before the fault
LIVE = ("originating", "ringing", "answered")
_LINKEDID = re.compile(rb"\r\nLinkedid: ([0-9.]+)\r\n")


class WatchedPbx(AmiSimulator):
    """Knows which calls it reported: a call is reported when one of its events went to
    a logged-in client, fully reported when all of them did."""

    def __init__(self) -> None:
        super().__init__()
        self.reported: set[str] = set()
        self.unheard: set[str] = set()  # a call with an event sent while nobody listened
        self.first_at: dict[str, float] = {}

    def _broadcast(self, data: bytes) -> None:
        match = _LINKEDID.search(data)
        if match is not None:
            call_id = match.group(1).decode()
            self.first_at.setdefault(call_id, time.monotonic())
            (self.reported if self.sessions else self.unheard).add(call_id)
        super()._broadcast(data)

    @property
    def fully_reported(self) -> set[str]:
        return self.reported - self.unheard


@dataclass
class Frames:
    """Every frame a socket received, collected in the background; `manager` is what the
    socket of the manager on extension 101 received (the supervisor's sees every call)."""

    got: list[dict[str, Any]] = field(default_factory=list)
    manager: Frames | None = None

    def ended(self) -> Counter[str]:
        return Counter(f["data"]["call_id"] for f in self.got if f["type"] == "call.ended")


@contextlib.asynccontextmanager
async def watching(api: RunningApi, actor: Actor) -> AsyncIterator[Frames]:
    frames = Frames()
    async with open_socket(api.ws_url, actor.token) as conn:

        async def collect() -> None:
            async for raw in conn:
                frames.got.append(json.loads(raw))

        task = asyncio.create_task(collect())
        try:
            yield frames
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def callcard(
    settings: Settings, people: dict[Role, Actor], *more: Feature
) -> AsyncIterator[tuple[WatchedPbx, Frames]]:
    """The PBX, the API consuming the call events, a supervisor's and a manager's socket."""
    call_events = start_call_events
    async with (
        WatchedPbx() as pbx,
        running_api(settings, features=(call_events, *more)) as api,
        watching(api, people[Role.SUPERVISOR]) as frames,
        watching(api, people[Role.MANAGER]) as manager,
    ):
        frames.manager = manager
        yield pbx, frames


async def burst(pbx: WatchedPbx, started: asyncio.Event) -> None:
    plays = []
    for n in range(CALLS):
        plays.append(asyncio.create_task(pbx.play(SCENARIOS[n % len(SCENARIOS)], pace=PACE)))
        if n + 1 == FAULT_AFTER:
            started.set()
        await asyncio.sleep(1 / RATE)
    await asyncio.gather(*plays)


@contextlib.asynccontextmanager
async def telephony(
    settings: Settings, pbx: WatchedPbx, tmp: Path, name: str
) -> AsyncIterator[CallcardProcess]:
    """`callcard telephony` against the simulator, connected."""
    env = {
        "CALLCARD_DATABASE_URL": settings.database_url,
        "CALLCARD_REDIS_URL": str(settings.redis_url),
        "CALLCARD_AMI_URL": pbx.url,
        "CALLCARD_AGI_BIND": f"127.0.0.1:{free_port()}",
        "CALLCARD_SPOOL_DIR": str(tmp / "spool"),
    }
    async with callcard_process("telephony", log=tmp / f"{name}.log", **env) as proc:
        await wait_for(_logged_in(pbx), within=30)
        yield proc


def _logged_in(pbx: WatchedPbx) -> Any:
    async def check() -> bool:
        return pbx.sessions > 0

    return check


async def journal(db: async_sessionmaker[AsyncSession]) -> tuple[dict[str, str], Counter[str]]:
    """Each call's state, and the call communications per PBX call id."""
    async with db() as session:
        states = dict((await session.execute(select(Call.pbx_call_id, Call.state))).all())
        comms = await session.execute(
            select(Communication.external_id, func.count())
            .where(Communication.kind == CommKind.CALL)
            .group_by(Communication.external_id)
        )
        logged = Counter({ext.removeprefix("call:pbx:"): n for ext, n in comms})
    return states, logged


async def settled(db: async_sessionmaker[AsyncSession], expected: set[str], frames: Frames) -> bool:
    states, logged = await journal(db)
    live = [c for c, s in states.items() if s in LIVE]
    return not live and expected <= set(logged) and set(logged) <= set(frames.ended())


async def verdict(
    db: async_sessionmaker[AsyncSession],
    fault: str,
    expected: set[str],
    frames: Frames,
    pbx: WatchedPbx,
) -> None:
    with contextlib.suppress(AssertionError):
        await wait_for(lambda: settled(db, expected, frames), within=60, step=0.5)
    states, logged = await journal(db)
    rang_101 = await rang(db, "101")
    stuck = sorted(c for c, s in states.items() if s in LIVE)
    lost = sorted(expected - set(logged))
    print(
        f"\nFAULT TABLE | {fault} | calls {CALLS} | any event heard {len(pbx.reported)}"
        f" | all events heard {len(pbx.fully_reported)} | expected {len(expected)}"
        f" | logged {len(set(logged))} | lost {len(lost)} | stuck active {len(stuck)}"
        f" | rang 101 {len(rang_101)}"
    )
    assert not stuck, f"calls left active: {stuck[:10]}"
    assert not lost, f"calls the PBX reported that never reached the journal: {lost[:10]}"
    assert {c: n for c, n in logged.items() if n != 1} == {}, "a call logged twice"
    ended = frames.ended()
    assert {c: n for c, n in ended.items() if n != 1} == {}, "a call.ended pushed twice"
    assert set(ended) == set(logged), f"call.ended not pushed: {sorted(set(logged) - set(ended))}"
    # The manager's phone rang for some: each of those ends on their socket, once.
    assert frames.manager is not None
    mine = frames.manager.ended()
    assert {c: n for c, n in mine.items() if n != 1} == {}, "a call.ended pushed twice"
    assert rang_101 & set(logged) <= set(mine), sorted(rang_101 - set(mine))[:10]


async def rang(db: async_sessionmaker[AsyncSession], extension: str) -> set[str]:
    async with db() as session:
        rows = await session.execute(select(Call.pbx_call_id, Call.ringing))
        return {c for c, ringing in rows if c and extension in (ringing or [])}


def outage_lines(text: str) -> tuple[int, int]:
    return text.count("unavailable ("), text.count(" back after ")


@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "no-persistence"])
async def test_a_redis_restart_mid_burst_loses_no_call(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    persistent: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fault = f"Redis restart, 3 s ({'append-only file' if persistent else 'no persistence'})"
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with restartable_redis(tmp_path / "redis", persistent=persistent) as redis:
        settings = settings.model_copy(update={"redis_url": redis.url})
        async with (
            callcard(settings, actors) as (pbx, frames),
            telephony(settings, pbx, tmp_path, "telephony"),
        ):
            started = asyncio.Event()
            calls = asyncio.create_task(burst(pbx, started))
            await started.wait()
            await restart(redis, down_s=3.0)
            await calls
            await verdict(db, fault, pbx.fully_reported, frames, pbx)
    # One line when Redis went and one when it came back, per part that uses it.
    spool_log = (tmp_path / "telephony.log").read_text()
    assert "Traceback" not in spool_log
    assert outage_lines(_lines(spool_log, "call-events: Redis")) == (1, 1)
    consumer = [r.getMessage() for r in caplog.records if "call-events: Redis" in r.getMessage()]
    assert outage_lines("\n".join(consumer)) == (1, 1)


async def test_telephony_killed_mid_burst_leaves_no_call_active(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with restartable_redis(tmp_path / "redis", persistent=False) as redis:
        settings = settings.model_copy(update={"redis_url": redis.url})
        async with callcard(settings, actors) as (pbx, frames):
            started = asyncio.Event()
            async with telephony(settings, pbx, tmp_path, "first") as first:
                calls = asyncio.create_task(burst(pbx, started))
                await started.wait()
                first.kill()
                killed_at = time.monotonic()
                await first.process.wait()
            await asyncio.sleep(3.0)  # the PBX goes on without anybody listening
            async with telephony(settings, pbx, tmp_path, "second"):
                back_at = time.monotonic()
                await calls
                # Knowable: every call fully reported that had begun well before the kill
                # (its start was written) or began after the restart; and every call
                # that was reported at all must end up ended, once, if it was written.
                knowable = {
                    c
                    for c in pbx.fully_reported
                    if pbx.first_at[c] < killed_at - 0.5 or pbx.first_at[c] > back_at
                }
                fault = "kill -9 of callcard telephony, back after 3 s"
                await verdict(db, fault, knowable, frames, pbx)


async def test_a_database_cut_mid_burst_loses_no_call(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    pg_server: PgServer,
) -> None:
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    pg = f"@{pg_server.host}:{pg_server.port}/"
    async with (
        CuttableProxy(pg_server.host, pg_server.port) as link,
        restartable_redis(tmp_path / "redis", persistent=False) as redis,
    ):
        url = settings.database_url.replace(pg, f"@127.0.0.1:{link.port}/")
        settings = settings.model_copy(update={"redis_url": redis.url, "database_url": url})
        async with (
            callcard(settings, actors, start_reminders, start_email) as (pbx, frames),
            telephony(settings, pbx, tmp_path, "telephony"),
        ):
            started = asyncio.Event()
            calls = asyncio.create_task(burst(pbx, started))
            await started.wait()
            await link.cut()
            await asyncio.sleep(3.0)
            await link.restore()
            await calls
            await verdict(db, "PostgreSQL cut, 3 s", pbx.fully_reported, frames, pbx)
    # Each part that polls the database says it once, not a traceback per retry.
    messages = [r for r in caplog.records if r.name.startswith("crm_api")]
    assert not [r for r in messages if r.exc_info], "a traceback was logged"
    for part in ("handler's storage", "reminders: the database", "e-mail outbox"):
        said = "\n".join(m.getMessage() for m in messages if part in m.getMessage())
        assert outage_lines(said) in ((1, 1), (0, 0)), said
    handler = "\n".join(m.getMessage() for m in messages if "handler's storage" in m.getMessage())
    assert outage_lines(handler) == (1, 1)


async def restart(redis: RestartableRedis, down_s: float) -> None:
    await redis.stop()
    await asyncio.sleep(down_s)
    await redis.start()


def _lines(text: str, needle: str) -> str:
    return "\n".join(line for line in text.splitlines() if needle in line)


async def test_a_call_ended_by_a_pbx_restart_while_telephony_was_down_ends_when_last_heard(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """The real captures of an Asterisk restart mid-call (A: the answered call ends with
    the PBX; B: the PBX back with no channel, then a new call), while `callcard telephony`
    was killed: the next process ends the first call, answered, at the last moment the old
    one heard the PBX, not at its answer; the new call lands as usual."""
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    first_part = prepare("pbx-restart-mid-call.A")
    bridged = max(i for i, e in enumerate(first_part) if ("Event", "BridgeEnter") in e)
    (call_a,) = {v for e in first_part for k, v in e if k == "Linkedid"}
    redis = aredis.Redis.from_url(str(settings.redis_url))
    async with callcard(settings, actors) as (pbx, frames):
        async with telephony(settings, pbx, tmp_path, "first") as first:
            await pbx.emit(first_part[: bridged + 1])
            answered = await wait_for(lambda: _answered_at(db, call_a))
            # The process notes when it last heard the PBX; it dies a while into the call.
            await wait_for(lambda: _heard_after(redis, answered + timedelta(seconds=1.5)))
            first.kill()
            await first.process.wait()
        await pbx.emit(first_part[bridged + 1 :])  # Asterisk restarts: the call ends unseen
        async with telephony(settings, pbx, tmp_path, "second"):
            second_call = await pbx.play("pbx-restart-mid-call.B")
            (call_b,) = {v for e in second_call for k, v in e if k == "Linkedid"}
            await wait_for(lambda: settled(db, {call_a, call_b}, frames), within=30)
    await redis.aclose()
    async with db() as session:
        row = await session.scalar(select(Call).where(Call.pbx_call_id == call_a))
    assert row is not None
    assert (row.state, row.disposition, row.failure) == ("ended", "answered", "gone_at_reconnect")
    assert row.talk_s is not None and row.talk_s >= 1.5
    states, logged = await journal(db)
    assert (states[call_b], logged[call_a], logged[call_b]) == ("ended", 1, 1)
    assert frames.ended() == Counter({call_a: 1, call_b: 1})


async def _answered_at(db: async_sessionmaker[AsyncSession], call_id: str) -> datetime | None:
    async with db() as session:
        at = await session.scalar(select(Call.answered_at).where(Call.pbx_call_id == call_id))
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


async def _heard_after(redis: aredis.Redis, moment: datetime) -> bool:
    keys = await redis.keys("callcard:telephony:last-heard:*")
    values = [await redis.get(k) for k in keys]
    return any(v and datetime.fromisoformat(v.decode()) > moment for v in values)
