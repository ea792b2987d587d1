"""`callcard sip` as its own process (real PostgreSQL and Redis, the call-event consumer
in an API, SIPp as the carrier and the manager's phone): killed with -9 mid-call, it
leaves the call live in the journal; the next process of that bridge ends it, once, and
the manager's screen sees it end. An API worker's click-to-call reaches it through the
command stream and is run and acknowledged once. Beside an AMI link under the same PBX
name, a restart of either ends only its own calls."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.captures import split_at_bridge
from support.factories import Actor
from support.peers import free_port
from support.processes import HeadlessProcess, active_one, headless, telephony
from support.server import RunningApi, running_api
from support.sipp import Sipp, start_sipp
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.commands import COMMANDS_STREAM, start_remote_pbx
from crm_api.calls.models import Call
from crm_api.calls.pipeline import start_call_events
from crm_api.calls.reconcile import CARRIED_KEY
from crm_api.calls.sip import call_prefix
from crm_api.clients.timeline.models import Communication
from crm_api.platform.db.base import utcnow
from crm_api.platform.settings import Settings
from crm_api.schedules import service as schedules
from telephony.ami.simulator import AmiSimulator, linkedid_of

pytestmark = [pytest.mark.sipp, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def backend() -> str:
    return "postgres"  # the bridge and the API meet only through PostgreSQL and Redis


@pytest.fixture
async def consumer(
    settings: Settings, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> AsyncIterator[RunningApi]:
    """An API worker consuming the call events; the manager (101) is on duty all week."""
    async with db() as session:
        for day in range(7):
            manager = actors[Role.MANAGER].user.id
            await schedules.add_shift(session, manager, day, time(0), time(23, 59, 59), False)
        await session.commit()
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with running_api(settings, features=(start_call_events,)) as running:
        yield running


@pytest.fixture
async def phone(tmp_path: Path) -> AsyncIterator[Sipp]:
    sipp = await start_sipp("phone.xml", tmp_path, pause_ms=500, rtp_echo=True)
    await sipp.listening()
    yield sipp
    await sipp.kill()


def bridge(name: str, settings: Settings, bind: str, phone: Sipp, logs: Path, **env: str):
    return headless(
        "sip",
        name,
        logs,
        CALLCARD_DATABASE_URL=settings.database_url,
        CALLCARD_REDIS_URL=str(settings.redis_url),
        CALLCARD_SIP_BIND=bind,
        CALLCARD_SIP_WORKERS="1",
        CALLCARD_SIP_PHONE_URI=f"sip:{{user}}@127.0.0.1:{phone.port}",
        CALLCARD_RECORDINGS_DIR=str(settings.recordings_dir),
        **env,
    )


def udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_a_call_of_a_killed_bridge_is_ended_once_by_its_next_process(
    settings: Settings,
    consumer: RunningApi,
    phone: Sipp,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    manager = actors[Role.MANAGER]
    port = free_port()
    bind = f"127.0.0.1:{port}"
    async with open_socket(consumer.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        first: HeadlessProcess
        async with bridge("sip-a", settings, bind, phone, tmp_path) as first:
            # The caller talks far longer than the test: the bridge dies mid-call.
            await start_sipp("caller.xml", tmp_path, target=bind, pause_ms=60_000)
            ringing = await sock.next_of("call.ringing", within=30)
            await sock.next_of("call.answered", within=15)
            first.kill()
            assert await first.process.wait() == -9
        # Its worker hangs up when its pool's pipe closes; then the port is free again.
        await wait_for(lambda: _async(udp_free(port)), within=15)
        async with db() as session:
            [call] = (await session.scalars(select(Call))).all()
        assert call.state == "answered"  # nobody told the journal

        async with bridge("sip-b", settings, bind, phone, tmp_path):
            ended = await sock.next_of("call.ended", within=30)
            assert ended["data"]["id"] == ringing["data"]["id"]
            assert ended["data"]["disposition"] == "answered"

            async def landed() -> tuple[Call, int] | None:
                async with db() as session:
                    [row] = (await session.scalars(select(Call))).all()
                    logged = await session.scalar(select(func.count()).select_from(Communication))
                return (row, int(logged or 0)) if row.state == "ended" else None

            row, logged = await wait_for(landed)
            assert (row.disposition, logged) == ("answered", 1)

        # A later process of the same bridge finds nothing left to end.
        async with bridge("sip-c", settings, bind, phone, tmp_path) as third:
            done = "ending 0 call(s) left live by this SIP bridge's last process"
            await wait_for(lambda: _async(done in third.log.read_text()), within=30)
        async with db() as session:
            assert await session.scalar(select(func.count()).select_from(Communication)) == 1


async def _async(value: bool) -> bool:
    return value


async def test_the_bridge_pool_reports_its_load_and_capacity_on_metrics(
    settings: Settings, consumer: RunningApi, tmp_path: Path
) -> None:
    phone = await start_sipp("phone.xml", tmp_path, pause_ms=500, rtp_echo=True, calls=2)
    await phone.listening()
    bind = f"127.0.0.1:{free_port()}"
    async with bridge("sip", settings, bind, phone, tmp_path) as sip:
        worker = {"worker": bind}

        async def scraped(**want: float) -> bool:
            metrics = await sip.metrics()
            return metrics is not None and all(
                metrics.value(name, **worker) == value for name, value in want.items()
            )

        await wait_for(
            lambda: scraped(callcard_sip_calls_in_progress=0, callcard_sip_call_capacity=2),
            within=30,
        )
        talking = await start_sipp(
            "caller.xml", tmp_path, target=bind, pause_ms=60_000, calls=2, rate=20
        )
        await wait_for(lambda: scraped(callcard_sip_calls_in_progress=2))
        # Full: a worker answers 503 while a leg is free (counted, see test_sip_bridge), and
        # pjsua itself 486 once both calls hold all four legs (unseen by the pool).
        extra = await start_sipp("caller_refused.xml", tmp_path, target=bind)
        assert await extra.wait() == 0, extra.log()
        assert extra.responses()[-1] in (486, 503)
        await talking.kill()


async def test_a_click_to_call_on_an_api_worker_is_placed_by_the_bridge_once(
    settings: Settings,
    phone: Sipp,
    actors: dict[Role, Actor],
    tmp_path: Path,
) -> None:
    """The worker has no PBX link: its command goes through Redis to `callcard sip`'s
    reader, which takes it once, places the call (the manager's phone, then the client's
    number on the trunk) and acknowledges it."""
    manager = actors[Role.MANAGER]
    client_phone = await start_sipp("phone_hangs_up.xml", tmp_path, pause_ms=2000)
    await client_phone.listening()
    trunk = f"sip:{{user}}@127.0.0.1:{client_phone.port}"
    bind = f"127.0.0.1:{free_port()}"
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    settings.pbx_command_wait_s = 30  # the bridge may still be starting its worker
    features = (start_call_events, start_remote_pbx)
    async with (
        bridge("sip", settings, bind, phone, tmp_path, CALLCARD_SIP_TRUNK_URI=trunk) as sip,
        running_api(settings, features=features) as api,
        open_socket(api.ws_url, manager.token) as conn,
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        async with api.client(manager.token) as http:
            card = await http.post(
                "/clients",
                json={"name": "Петров Иван", "phones": [{"number": "+7 916 765-43-21"}]},
            )
            r = await http.post(
                f"/clients/{card.json()['id']}/call",
                json={"phone_id": card.json()["phones"][0]["id"]},
            )
        assert r.status_code == 202, r.text
        call_row = r.json()["call"]["id"]
        assert (await sock.next_of("call.answered", within=30))["data"]["id"] == call_row
        ended = await sock.next_of("call.ended", within=30)
        assert (ended["data"]["id"], ended["data"]["disposition"]) == (call_row, "answered")
        metrics = await sip.metrics()
        assert metrics is not None
        assert metrics.total("callcard_pbx_commands_total", outcome="ok") == 1
        assert metrics.total("callcard_pbx_commands_total") == 1
        redis = api.app.state.services.redis
        [group] = await redis.xinfo_groups(COMMANDS_STREAM.format(pbx=settings.pbx_name))
        assert (group["entries-read"], group["pending"]) == (1, 0)  # read once, acknowledged
    assert await client_phone.wait() == 0, client_phone.log()
    assert client_phone.received("INVITE") == 1


async def _states(db: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with db() as session:
        return dict((await session.execute(select(Call.pbx_call_id, Call.state))).all())


async def _states_are(db: async_sessionmaker[AsyncSession], expected: dict[str, str]) -> bool:
    return await _states(db) == expected


async def _state_is(db: async_sessionmaker[AsyncSession], call_id: str, state: str) -> bool:
    return (await _states(db)).get(call_id) == state


@pytest.mark.timeout(240)  # four processes start
async def test_the_bridge_and_an_ami_link_under_one_name_each_end_only_their_own_calls(
    settings: Settings,
    consumer: RunningApi,
    phone: Sipp,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """Both left on the default PBX name. The AMI link's telephony process dies and its
    call ends in the gap: its next process ends that call and not the bridge's, which the
    bridge wrote down as its own. Then the bridge dies: its next process ends its call and
    not the AMI link's."""
    manager = actors[Role.MANAGER]
    port = free_port()
    bind = f"127.0.0.1:{port}"
    on_ami, rest_of_ami = split_at_bridge("incoming-answered")
    later_on_ami, _ = split_at_bridge("incoming-answered")
    ami_call, later_ami_call = (
        next(filter(None, map(linkedid_of, on))) for on in (on_ami, later_on_ami)
    )
    carried = CARRIED_KEY.format(link=call_prefix(bind))
    redis = consumer.app.state.services.redis
    pbx = AmiSimulator()
    async with (
        pbx,
        open_socket(consumer.ws_url, manager.token) as conn,
        bridge("sip-a", settings, bind, phone, tmp_path) as sip_a,
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        caller = await start_sipp("caller.xml", tmp_path, target=bind, pause_ms=60_000)
        sip_call = (await sock.next_of("call.answered", within=30))["data"]
        assert sip_call["pbx"] == settings.pbx_name
        await wait_for(lambda: redis.sismember(carried, f"pbx:{sip_call['call_id']}"))

        async with telephony("telephony-1", settings, pbx, tmp_path) as first:
            await active_one([first], pbx)
            await pbx.emit(on_ami)
            both = {sip_call["call_id"]: "answered", ami_call: "answered"}
            await wait_for(lambda: _states_are(db, both), within=30)
            first.kill()
            assert await first.process.wait() == -9
        await pbx.emit(rest_of_ami)  # nobody listens: the hangup goes unheard
        async with telephony("telephony-2", settings, pbx, tmp_path) as second:
            await active_one([second], pbx)
            await wait_for(lambda: _state_is(db, ami_call, "ended"), within=30)
            gone = "call(s) live in the journal are gone from the PBX"
            [said] = [line for line in second.log.read_text().splitlines() if gone in line]
            assert f"1 {gone}" in said
            assert (await _states(db))[sip_call["call_id"]] == "answered"

            await pbx.emit(later_on_ami)
            await wait_for(lambda: _state_is(db, later_ami_call, "answered"), within=30)
            sip_a.kill()
            assert await sip_a.process.wait() == -9
            await wait_for(lambda: _async(udp_free(port)), within=15)
            async with bridge("sip-b", settings, bind, phone, tmp_path):
                while (await sock.next_of("call.ended", within=30))["data"]["id"] != sip_call["id"]:
                    pass
                done = "ending 1 call(s) left live by this SIP bridge's last process"
                assert done in (tmp_path / "sip-b.log").read_text()
                assert (await _states(db))[later_ami_call] == "answered"
        await caller.kill()


async def test_the_bridge_sweeps_its_own_calls_that_outlive_the_longest_call_and_no_others(
    settings: Settings,
    consumer: RunningApi,
    phone: Sipp,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """No call lasts longer than 3 s here: the bridge's call, talking on, is ended as
    silent. Older live calls, another PBX's and an AMI link's under the bridge's name,
    are not the bridge's to end."""
    manager = actors[Role.MANAGER]
    bind = f"127.0.0.1:{free_port()}"
    long_ago = utcnow() - timedelta(hours=1)
    others = {"office-b": "1796221899.2096", settings.pbx_name: "1796221899.2097"}
    async with db() as session:
        for pbx_name, call_id in others.items():
            session.add(
                Call(
                    pbx=pbx_name,
                    pbx_call_id=call_id,
                    direction="inbound",
                    state="answered",
                    started_at=long_ago,
                    answered_at=long_ago,
                    ringing=[],
                    agents=[],
                )
            )
        await session.commit()
    sweeping = {"CALLCARD_CALL_MAX_S": "3", "CALLCARD_CALL_SWEEP_EVERY_S": "0.2"}
    async with (
        open_socket(consumer.ws_url, manager.token) as conn,
        bridge("sip", settings, bind, phone, tmp_path, **sweeping),
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        caller = await start_sipp("caller.xml", tmp_path, target=bind, pause_ms=60_000)
        answered = (await sock.next_of("call.answered", within=30))["data"]
        ended = (await sock.next_of("call.ended", within=30))["data"]
        assert ended["id"] == answered["id"]
        async with db() as session:
            rows = (await session.scalars(select(Call))).all()
        by_id = {row.pbx_call_id: row for row in rows}
        assert by_id[answered["call_id"]].failure == "no_events"
        assert {by_id[call_id].state for call_id in others.values()} == {"answered"}
        await caller.kill()
