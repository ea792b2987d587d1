"""`callcard sip` as its own process (real PostgreSQL and Redis, the call-event consumer
in an API, SIPp as the carrier and the manager's phone): killed with -9 mid-call, it
leaves the call live in the journal; the next process of that bridge ends it, once, and
the manager's screen sees it end."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.processes import HeadlessProcess, headless
from support.server import RunningApi, running_api
from support.sipp import Sipp, free_udp_tcp_port, start_sipp
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.models import Call
from crm_api.calls.pipeline import start_call_events
from crm_api.clients.timeline.models import Communication
from crm_api.platform.settings import Settings
from crm_api.schedules import service as schedules

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


def bridge(name: str, settings: Settings, bind: str, phone: Sipp, logs: Path):
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
    port = free_udp_tcp_port()
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
    bind = f"127.0.0.1:{free_udp_tcp_port()}"
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
