"""Standby telephony: two real `callcard telephony` processes for one PBX (the AMI
simulator replaying real captures), real Redis and PostgreSQL, the call-event consumer in
an API. One holds the lease and is the only one on AMI; kill -9 it mid-call and the
other takes over, lists the live calls with CoreShowChannels, and every call lands once.
Click-to-call on separate `callcard api` workers reaches the PBX through the active one,
once, or fails clearly and never runs later; with two PBXs, each pair takes only the
commands for its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.captures import client_channel, split_at_bridge
from support.factories import Actor, make_user
from support.processes import LEASE_S, HeadlessProcess, active_one, telephony
from support.server import ApiProcess, RunningApi, api_process, running_api
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.commands import COMMANDS_STREAM, CONSUMER, GROUP, STATE_KEY, RemotePbx
from crm_api.calls.models import Call
from crm_api.calls.partitions import CallAppender
from crm_api.calls.pipeline import CALL_EVENTS_STREAM, start_call_events
from crm_api.calls.reconcile import CARRIED_KEY
from crm_api.clients.timeline.models import Communication
from crm_api.platform.settings import Settings
from telephony.ami.adapter import parse_ami_url
from telephony.ami.simulator import AmiSimulator, linkedid_of
from telephony.pbx import OriginateRequest, PbxError

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
STREAM = COMMANDS_STREAM.format(pbx="pbx")  # the commands of the PBX named by default


@pytest.fixture
def backend() -> str:
    return "postgres"  # two processes meet only through PostgreSQL and Redis


@pytest.fixture
async def pbx() -> AsyncIterator[AmiSimulator]:
    async with AmiSimulator() as sim:
        yield sim


@pytest.fixture
async def consumer(settings: Settings) -> AsyncIterator[RunningApi]:
    """An API worker: the call events' consumer."""
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with running_api(settings, features=(start_call_events,)) as running:
        yield running


async def calls_logged(db: async_sessionmaker[AsyncSession]) -> tuple[list[Call], int]:
    async with db() as session:
        calls = list((await session.scalars(select(Call).order_by(Call.id))).all())
        logged = await session.scalar(select(func.count()).select_from(Communication))
    return calls, int(logged or 0)


async def test_kill_9_of_the_active_hands_over_and_every_call_lands_once(
    settings: Settings,
    consumer: RunningApi,
    pbx: AmiSimulator,
    db: async_sessionmaker[AsyncSession],
    actors: dict[Role, Actor],
    tmp_path: Path,
) -> None:
    async with (
        telephony("telephony-a", settings, pbx, tmp_path) as a,
        telephony("telephony-b", settings, pbx, tmp_path) as b,
    ):
        first = await active_one([a, b], pbx)
        standby = b if first is a else a
        # Started (its metrics answer), it is not on AMI at all.
        assert (await wait_for(standby.metrics, within=30)).value("callcard_ami_up") == 0

        # A call answered before the crash, and one that rings through it.
        before, after = split_at_bridge("incoming-answered")
        await pbx.emit(before)
        await wait_for(lambda: _state_of_first(db, "answered"))
        listed = len(pbx.actions_named("CoreShowChannels"))

        first.kill()
        died = time.monotonic()
        assert await first.process.wait() == -9
        taken = await active_one([standby], pbx)
        takeover_s = time.monotonic() - died
        print(f"takeover after kill -9: {takeover_s:.2f} s (lease {LEASE_S} s)")
        metrics = await taken.metrics()
        assert metrics and metrics.value("callcard_calls_in_progress") == 1  # from the listing
        assert len(pbx.actions_named("CoreShowChannels")) > listed

        await pbx.emit(after)
        await pbx.play("incoming-missed")  # a call wholly after the takeover

        async def both_ended() -> bool:
            calls, logged = await calls_logged(db)
            return len(calls) == 2 and all(c.state == "ended" for c in calls) and logged == 2

        await wait_for(both_ended)
        await asyncio.sleep(LEASE_S)  # and nothing more arrives
        calls, logged = await calls_logged(db)
        assert [c.disposition for c in calls] == ["answered", "missed"]
        assert logged == 2
        assert calls[0].answered_by == "101" and calls[0].talk_s and calls[0].talk_s > 0


async def _state_of_first(db: async_sessionmaker[AsyncSession], state: str) -> bool:
    calls, _ = await calls_logged(db)
    return bool(calls) and calls[0].state == state


async def test_a_stopped_active_hands_over_and_comes_back_as_standby(
    settings: Settings, consumer: RunningApi, pbx: AmiSimulator, tmp_path: Path
) -> None:
    """SIGTERM releases the lease at once; the survivor takes it, the other stands by."""
    async with telephony("telephony-a", settings, pbx, tmp_path) as a:
        assert await active_one([a], pbx) is a
        async with telephony("telephony-b", settings, pbx, tmp_path) as b:
            await asyncio.sleep(LEASE_S)  # b had time to try
            assert await active_one([a, b], pbx) is a
            a.process.terminate()
            assert await a.process.wait() == 0
            assert await active_one([b], pbx) is b
            metrics = await b.metrics()
            assert metrics and metrics.value("callcard_telephony_takeovers_total") == 1


def worker(
    settings: Settings, logs: Path, name: str, *, wait_s: float, **env: str
) -> AbstractAsyncContextManager[ApiProcess]:
    """A `callcard api` worker: no PBX link of its own."""
    return api_process(
        settings.database_url,
        log=logs / f"{name}.log",
        CALLCARD_REDIS_URL=str(settings.redis_url),
        CALLCARD_RECORDINGS_DIR=str(logs),
        CALLCARD_PBX_COMMAND_WAIT_S=str(wait_s),
        **env,
    )


def api_client(api: ApiProcess, token: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(base_url=api.base_url + "/api/v1", headers=headers, timeout=60)


async def new_client(
    api: ApiProcess, manager: Actor, number: str = "+7 916 123-45-67"
) -> tuple[int, int]:
    """A client of the manager's: its id and its phone's."""
    async with api_client(api, manager.token) as http:
        r = await http.post(
            "/clients",
            json={
                "name": "Сидоров Алексей",
                "phones": [{"number": number}],
                "manager_id": manager.user.id,
            },
        )
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["phones"][0]["id"]


async def click_to_call(api: ApiProcess, manager: Actor, client: tuple[int, int]) -> httpx.Response:
    async with api_client(api, manager.token) as http:
        return await http.post(f"/clients/{client[0]}/call", json={"phone_id": client[1]})


def ws_url(api: ApiProcess) -> str:
    return api.base_url.replace("http://", "ws://") + "/ws"


async def answered(sock: Socket, call_row: int) -> None:
    """The PBX's events of the click-to-call reached the manager's socket."""
    while (await sock.next_of("call.answered", within=30))["data"]["id"] != call_row:
        pass
    while (await sock.next_of("call.ended", within=30))["data"]["id"] != call_row:
        pass


async def placed(
    api: ApiProcess, sock: Socket, manager: Actor, client: tuple[int, int]
) -> httpx.Response:
    """A click-to-call the PBX placed: it was answered and ended on the manager's socket."""
    r = await click_to_call(api, manager, client)
    assert r.status_code == 202, r.text
    await answered(sock, r.json()["call"]["id"])
    return r


@pytest.mark.timeout(240)  # four processes start
async def test_click_to_call_on_an_api_worker_originates_once_through_the_active_even_after_kill_9(
    settings: Settings, pbx: AmiSimulator, actors: dict[Role, Actor], tmp_path: Path
) -> None:
    manager = actors[Role.MANAGER]
    async with (
        telephony("telephony-a", settings, pbx, tmp_path) as a,
        telephony("telephony-b", settings, pbx, tmp_path) as b,
        worker(settings, tmp_path, "api-a", wait_s=30) as api_a,
        worker(settings, tmp_path, "api-b", wait_s=30) as api_b,
    ):
        first = await active_one([a, b], pbx)
        standby = b if first is a else a
        client = await new_client(api_a, manager)
        # The manager clicks on worker A; the socket is on worker B.
        async with open_socket(ws_url(api_b), manager.token) as conn:
            sock = Socket(conn)
            await sock.next_of("hello")
            r = await placed(api_a, sock, manager, client)
            [originate] = pbx.actions_named("Originate")
            assert originate.get("Channel") == "PJSIP/101"
            assert originate.get("Exten") == "79161234567"
            assert originate.get("Variable") == f"CRM_CALL_ID={r.json()['call']['call_id']}"

            # The active dies; a click in the gap waits for the standby and runs once.
            first.kill()
            assert await first.process.wait() == -9
            assert (await wait_for(standby.metrics)).value("callcard_telephony_active") == 0
            r = await click_to_call(api_a, manager, client)
            assert r.status_code == 202, r.text
            assert await active_one([standby], pbx) is standby
            await answered(sock, r.json()["call"]["id"])
        assert len(pbx.actions_named("Originate")) == 2
        assert await commands(standby, "ok") == 1


async def commands(process: HeadlessProcess, outcome: str) -> float:
    metrics = await process.metrics()
    return metrics.total("callcard_pbx_commands_total", outcome=outcome) if metrics else -1


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_a_click_no_telephony_takes_in_time_fails_clearly_and_never_runs_later(
    settings: Settings, pbx: AmiSimulator, actors: dict[Role, Actor], tmp_path: Path
) -> None:
    manager = actors[Role.MANAGER]
    redis = aredis.Redis.from_url(str(settings.redis_url))
    async with worker(settings, tmp_path, "api", wait_s=5) as api:
        client = await new_client(api, manager)
        async with open_socket(ws_url(api), manager.token) as conn:
            sock = Socket(conn)
            await sock.next_of("hello")
            r = await click_to_call(api, manager, client)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "pbx_unavailable"
            failed = await sock.next_of("call.failed", within=30)
            assert failed["data"]["reason"] == "pbx_unavailable"

            # A command an active process read and died with, before acting on it.
            waiting = asyncio.create_task(
                RemotePbx(redis, pbx="pbx", wait_s=60).originate(
                    OriginateRequest(crm_call_id="crm-left-pending", agent="102", number="100")
                )
            )
            await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
            await wait_for(lambda: _equals(redis.xlen(STREAM), 2))
            read = await redis.xreadgroup(GROUP, CONSUMER, {STREAM: ">"}, count=10)
            assert len(read[0][1]) == 2  # the expired click's and this one, neither acknowledged

            # Telephony comes up: the expired command is skipped, the one still waiting runs.
            async with telephony("telephony", settings, pbx, tmp_path) as late:
                await active_one([late], pbx)
                await asyncio.wait_for(waiting, 60)
                [originate] = pbx.actions_named("Originate")
                assert originate.get("Variable") == "CRM_CALL_ID=crm-left-pending"
                assert await commands(late, "not_run") == 1

                r = await click_to_call(api, manager, client)
                assert r.status_code == 202, r.text
                await answered(sock, r.json()["call"]["id"])
                assert len(pbx.actions_named("Originate")) == 2
                assert await commands(late, "ok") == 2

                # The PBX's refusal comes back as it is: here, no such call to end.
                with pytest.raises(PbxError) as refused:
                    await RemotePbx(redis, pbx="pbx", wait_s=30).hangup("1700000000.1")
                assert refused.value.reason == "call_not_found"
                assert await commands(late, "refused") == 1
    await redis.aclose()


async def test_a_click_taken_by_an_active_that_dies_before_answering_says_so(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """The outcome is unknown (the phone may ring): the user is told, and the call is left
    to its own events rather than marked failed."""
    manager = actors[Role.MANAGER]
    redis = aredis.Redis.from_url(str(settings.redis_url))
    async with worker(settings, tmp_path, "api", wait_s=5) as api:
        client = await new_client(api, manager)
        clicking = asyncio.create_task(click_to_call(api, manager, client))
        # This test is the active process: it reads the command, takes it, and dies.
        await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        read = await wait_for(lambda: redis.xreadgroup(GROUP, CONSUMER, {STREAM: ">"}, count=1))
        command = json.loads(read[0][1][0][1][b"e"])
        assert await redis.set(STATE_KEY.format(id=command["id"]), "taken", xx=True)
        r = await clicking
    assert r.status_code == 503 and r.json()["error"]["code"] == "pbx_no_reply", r.text
    # No OriginateFailed (appended before the 503), in any partition.
    streams = CallAppender(redis, CALL_EVENTS_STREAM, partitions=settings.call_partitions).streams()
    assert [await redis.xlen(stream) for stream in streams] == [0] * len(streams)
    calls, _ = await calls_logged(db)
    assert [c.state for c in calls] == ["originating"]
    await redis.aclose()


@contextlib.asynccontextmanager
async def two_offices(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[AmiSimulator, AmiSimulator, HeadlessProcess, HeadlessProcess, ApiProcess]]:
    """Office A's PBX and office B's, each with its active telephony process, and an API
    worker that places 1xx phones on office A and 2xx on office B."""
    for office in ("a", "b"):
        (tmp_path / office).mkdir()
    pbx_a, pbx_b = AmiSimulator(), AmiSimulator()
    async with (
        pbx_a,
        pbx_b,
        telephony(
            "telephony-a", settings, pbx_a, tmp_path / "a", CALLCARD_PBX_NAME="office-a"
        ) as a,
        telephony(
            "telephony-b", settings, pbx_b, tmp_path / "b", CALLCARD_PBX_NAME="office-b"
        ) as b,
        worker(
            settings,
            tmp_path,
            "api",
            wait_s=30,
            CALLCARD_PBX_NAME="office-a",
            CALLCARD_PBX_EXTENSIONS=json.dumps({"2": "office-b"}),
        ) as api,
    ):
        await active_one([a], pbx_a)
        await active_one([b], pbx_b)
        yield pbx_a, pbx_b, a, b, api


@pytest.mark.timeout(240)  # three processes start
async def test_with_two_pbxs_each_telephony_takes_only_the_commands_for_its_own(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """Office A's phones are 1xx on one PBX, office B's 2xx on another: a manager's click
    reaches their own PBX's telephony process and no other."""
    async with db() as session:
        office_b = await make_user(session, Role.MANAGER, extension="201")
        await session.commit()
    office_a = actors[Role.MANAGER]  # extension 101
    async with two_offices(settings, tmp_path) as (pbx_a, pbx_b, a, b, api):
        for manager, pbx, extension in ((office_a, pbx_a, "101"), (office_b, pbx_b, "201")):
            client = await new_client(api, manager, f"+7 916 123-4{extension}")
            async with open_socket(ws_url(api), manager.token) as conn:
                sock = Socket(conn)
                await sock.next_of("hello")
                await placed(api, sock, manager, client)
            [originate] = pbx.actions_named("Originate")
            assert originate.get("Channel") == f"PJSIP/{extension}"
        assert await commands(a, "ok") == 1 and await commands(b, "ok") == 1

        # Office B's manager hangs up a call they answered: office B's PBX hangs it up.
        before, _ = split_at_bridge("incoming-answered", literals={"101": "201"})
        async with open_socket(ws_url(api), office_b.token) as conn:
            sock = Socket(conn)
            await sock.next_of("hello")
            await pbx_b.emit(before)
            call = (await sock.next_of("call.answered", within=30))["data"]
            async with api_client(api, office_b.token) as http:
                r = await http.post(f"/calls/{call['id']}/hangup")
            assert r.status_code == 202, r.text
            assert (await sock.next_of("call.ended", within=30))["data"]["id"] == call["id"]
        [hangup] = pbx_b.actions_named("Hangup")
        assert hangup.get("Channel") == client_channel(before)
        assert not pbx_a.actions_named("Hangup")


async def calls_by_pbx(db: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str], str]:
    calls, _ = await calls_logged(db)
    return {(c.pbx, str(c.pbx_call_id)): c.state for c in calls}


@pytest.mark.timeout(240)  # four processes start
async def test_two_pbxs_reusing_a_linkedid_make_two_calls_and_a_restart_ends_only_its_own(
    settings: Settings,
    consumer: RunningApi,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """Both PBXs give their call the same Linkedid (their counters restarted alike): two
    calls, each under its PBX's name. A's telephony process dies and A's call ends in the
    gap: A's next process ends A's call; B's, with the same id, talks on."""
    for office in ("a", "b"):
        (tmp_path / office).mkdir()
    on, rest = split_at_bridge("incoming-answered")  # one replay, played on both PBXs
    call_id = next(filter(None, map(linkedid_of, on)))
    redis = aredis.Redis.from_url(str(settings.redis_url))
    pbx_a, pbx_b = AmiSimulator(), AmiSimulator()
    office_a = {"CALLCARD_PBX_NAME": "office-a"}
    async with (
        pbx_a,
        pbx_b,
        telephony(
            "telephony-b", settings, pbx_b, tmp_path / "b", CALLCARD_PBX_NAME="office-b"
        ) as b,
    ):
        await active_one([b], pbx_b)
        async with telephony("telephony-a1", settings, pbx_a, tmp_path / "a", **office_a) as a1:
            await active_one([a1], pbx_a)
            await pbx_a.emit(on)
            await pbx_b.emit(on)
            answered = {("office-a", call_id): "answered", ("office-b", call_id): "answered"}
            await wait_for(lambda: _equals(calls_by_pbx(db), answered), within=30)
            # B's process wrote down its call as B's, not A's.
            address = parse_ami_url(pbx_b.url)
            carried = CARRIED_KEY.format(link=f"{address.host}:{address.port}")
            await wait_for(lambda: redis.sismember(carried, f"office-b:{call_id}"))
            assert not await redis.sismember(carried, f"office-a:{call_id}")
            a1.kill()
            assert await a1.process.wait() == -9
        await pbx_a.emit(rest)  # nobody listens to A: the hangup goes unheard
        async with telephony("telephony-a2", settings, pbx_a, tmp_path / "a", **office_a) as a2:
            await active_one([a2], pbx_a)
            ended = {**answered, ("office-a", call_id): "ended"}
            await wait_for(lambda: _equals(calls_by_pbx(db), ended), within=30)
            gone = "call(s) live in the journal are gone from the PBX"
            [said] = [line for line in a2.log.read_text().splitlines() if gone in line]
            assert f"1 {gone}" in said
            assert (await calls_by_pbx(db))[("office-b", call_id)] == "answered"

        await pbx_b.emit(rest)  # B's call ends as calls do: written once, as B's
        both = {("office-a", call_id): "ended", ("office-b", call_id): "ended"}
        await wait_for(lambda: _equals(calls_by_pbx(db), both), within=30)
    async with db() as session:
        logged = await session.scalars(
            select(Communication.external_id).order_by(Communication.external_id)
        )
        assert list(logged) == [f"call:office-a:{call_id}", f"call:office-b:{call_id}"]
    await redis.aclose()


@pytest.mark.timeout(240)  # three processes start
async def test_a_hangup_goes_to_the_pbx_carrying_the_call_whatever_its_agents_extension(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """Both offices number their phones alike, and their PBXs gave two calls the same
    Linkedid: 101 answers one on each. The workers place 1xx on office A, yet hanging up
    office B's call hangs it up on PBX B, and A's call talks on."""
    manager = actors[Role.MANAGER]  # extension 101
    on, _ = split_at_bridge("incoming-answered")
    call_id = next(filter(None, map(linkedid_of, on)))
    async with (
        two_offices(settings, tmp_path) as (pbx_a, pbx_b, _, _, api),
        open_socket(ws_url(api), manager.token) as conn,
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        await pbx_a.emit(on)
        await pbx_b.emit(on)
        calls = [(await sock.next_of("call.answered", within=30))["data"] for _ in range(2)]
        by_pbx = {call["pbx"]: call for call in calls}
        assert sorted(by_pbx) == ["office-a", "office-b"]
        assert {call["call_id"] for call in calls} == {call_id}
        async with api_client(api, manager.token) as http:
            r = await http.post(f"/calls/{by_pbx['office-b']['id']}/hangup")
        assert r.status_code == 202, r.text
        assert (await sock.next_of("call.ended", within=30))["data"]["id"] == by_pbx["office-b"][
            "id"
        ]
        [hangup] = pbx_b.actions_named("Hangup")
        assert hangup.get("Channel") == client_channel(on)
        assert not pbx_a.actions_named("Hangup")
        states = await calls_by_pbx(db)
        assert states == {("office-a", call_id): "answered", ("office-b", call_id): "ended"}
