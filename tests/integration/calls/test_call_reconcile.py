"""Nothing stays live forever. A call only the FastAGI router saw (the AMI link was down)
reaches the journal and is ended when the PBX, back, does not list it; a call nothing more
is heard of is ended by the sweeper. The PBX is the AMI simulator; Callcard is real."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.peers import free_port
from support.server import RunningApi, running_api
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.models import Call
from crm_api.calls.pipeline import start_call_events
from crm_api.calls.telephony import start_telephony
from crm_api.clients.timeline.models import CommKind, Communication
from crm_api.platform.settings import Settings
from telephony.ami.adapter import AmiAdapter
from telephony.ami.simulator import AmiSimulator

CALL = "1796190000.7"


def agi_environment(call_id: str, caller: str) -> bytes:
    """What Asterisk sends for `AGI(agi://…/route,${CALLERID(num)},${EXTEN})` on a trunk."""
    lines = [
        "agi_network: yes",
        "agi_network_script: route",
        "agi_channel: PJSIP/trunk-00000042",
        f"agi_uniqueid: {call_id}",
        f"agi_callerid: {caller}",
        "agi_calleridname: Иван Петров",
        "agi_context: from-trunk",
        "agi_extension: 74951234567",
        f"agi_arg_1: {caller}",
        "agi_arg_2: 74951234567",
    ]
    return ("\n".join(lines) + "\n\n").encode()


async def ask_route(bind: str, call_id: str, caller: str) -> bytes:
    host, _, port = bind.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(agi_environment(call_id, caller))
    command = await asyncio.wait_for(reader.readline(), 5)
    writer.write(b"200 result=1\n")
    await writer.drain()
    writer.close()
    return command


@contextlib.asynccontextmanager
async def running_callcard(
    settings: Settings, pbx: AmiSimulator, *, call_max_s: float
) -> AsyncIterator[RunningApi]:
    """The API with the call-event consumer and the PBX link."""
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    settings.ami_url = pbx.url
    settings.agi_bind = f"127.0.0.1:{free_port()}"
    settings.call_max_s = call_max_s
    settings.call_sweep_every_s = 0.2
    call_events = start_call_events
    async with running_api(settings, features=(call_events, start_telephony)) as running:
        await link(running).wait_connected(10)
        yield running


@pytest.fixture
async def callcard(settings: Settings, pbx: AmiSimulator) -> AsyncIterator[RunningApi]:
    async with running_callcard(settings, pbx, call_max_s=3600.0) as running:
        yield running


@pytest.fixture
async def sweeping(settings: Settings, pbx: AmiSimulator) -> AsyncIterator[RunningApi]:
    """The sweeper ends a call nothing was heard of for 2 s."""
    async with running_callcard(settings, pbx, call_max_s=2.0) as running:
        yield running


def link(api: RunningApi) -> AmiAdapter:
    adapter = api.app.state.services.links.pbx
    assert isinstance(adapter, AmiAdapter)
    return adapter


async def call_row(db: async_sessionmaker[AsyncSession], call_id: str) -> Call | None:
    async with db() as session:
        return await session.scalar(select(Call).where(Call.pbx_call_id == call_id))


async def logged(db: async_sessionmaker[AsyncSession], call_id: str) -> int:
    async with db() as session:
        found = await session.scalars(
            select(Communication.id).where(
                Communication.kind == CommKind.CALL,
                Communication.external_id == f"call:pbx:{call_id}",
            )
        )
        return len(found.all())


async def test_a_call_routed_while_the_pbx_link_is_down_is_journaled_and_ended_at_reconnect(
    callcard: RunningApi,
    pbx: AmiSimulator,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    actors: dict[Role, Actor],
) -> None:
    adapter = link(callcard)
    async with open_socket(callcard.ws_url, actors[Role.SUPERVISOR].token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        port = pbx.port
        await pbx.stop()  # Asterisk restarts: AMI is gone, the dialplan still asks us
        await wait_for(lambda: _now(not adapter.connected))
        command = await ask_route(settings.agi_bind, CALL, "+79265550107")
        assert command.startswith(b"SET VARIABLE CALLCARD_ROUTE")
        # The routing server saw it: it is in the journal, although AMI never said a word.
        journaled = await wait_for(lambda: call_row(db, CALL))
        assert (journaled.state, journaled.caller) == ("ringing", "+79265550107")

        async with AmiSimulator(port=port):  # back, and the call is over
            await adapter.wait_connected(10)
            ended = await sock.next_of("call.ended", within=10)
            assert ended["data"]["call_id"] == CALL
            row = await wait_for(lambda: call_row(db, CALL))
            assert (row.state, row.failure, row.disposition) == (
                "ended",
                "gone_at_reconnect",
                "missed",
            )
            assert await logged(db, CALL) == 1
        supervisor = actors[Role.SUPERVISOR].user.id
        later = await sock.settle(callcard.app.state.services.hub, supervisor)
        assert not [f for f in later if f["type"] == "call.ended"]  # ended once
    # Each wait for the PBX was at most the 2 s cap.
    assert adapter.status.backoff_s is not None and adapter.status.backoff_s <= 2.0


async def test_a_call_nothing_more_is_heard_of_is_swept(
    sweeping: RunningApi,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await ask_route(settings.agi_bind, CALL, "+79265550108")
    await wait_for(lambda: call_row(db, CALL))
    row = await wait_for(lambda: _ended(db, CALL), within=20)
    assert (row.failure, row.disposition) == ("no_events", "missed")
    assert await logged(db, CALL) == 1


async def _ended(db: async_sessionmaker[AsyncSession], call_id: str) -> Call | None:
    row = await call_row(db, call_id)
    return row if row is not None and row.state == "ended" else None


async def _now(value: bool) -> bool:
    return value
