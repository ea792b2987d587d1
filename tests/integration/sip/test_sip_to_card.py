"""From the SIP trunk to the operator's screen, with no Asterisk: SIPp is the carrier and
the manager's phone, Callcard's own SIP bridge (one pjsua2 worker, as `callcard run` with
CALLCARD_SIP_BIND starts it) takes the call, asks the routing policy, bridges, records;
the card pops on the manager's socket and the call lands on the card with its recording.
Click-to-call goes out through the same bridge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.peers import free_port
from support.server import RunningApi, running_api
from support.sip_bridge import wav_stats
from support.sipp import Sipp, start_sipp
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.pipeline import start_call_events
from crm_api.calls.sip import start_sip
from crm_api.platform.settings import Settings
from crm_api.schedules import service as schedules

pytestmark = pytest.mark.sipp


@pytest.fixture
async def phone(tmp_path: Path) -> AsyncIterator[Sipp]:
    """The manager's phone: rings a second, answers, talks back what it hears."""
    sipp = await start_sipp("phone.xml", tmp_path, pause_ms=1000, rtp_echo=True)
    await sipp.listening()
    yield sipp
    await sipp.kill()


@pytest.fixture
async def client_phone(tmp_path: Path) -> AsyncIterator[Sipp]:
    """The client behind the trunk: answers, talks two seconds and hangs up."""
    sipp = await start_sipp("phone_hangs_up.xml", tmp_path, pause_ms=2000)
    await sipp.listening()
    yield sipp
    await sipp.kill()


@pytest.fixture
async def sip_api(
    settings: Settings,
    phone: Sipp,
    client_phone: Sipp,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
) -> AsyncIterator[RunningApi]:
    async with db() as session:  # the manager (101) is on duty all week
        for day in range(7):
            manager = actors[Role.MANAGER].user.id
            await schedules.add_shift(session, manager, day, time(0), time(23, 59, 59), False)
        await session.commit()
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    settings.sip_bind = f"127.0.0.1:{free_port()}"
    settings.sip_phone_uri = f"sip:{{user}}@127.0.0.1:{phone.port}"
    settings.sip_trunk_uri = f"sip:{{user}}@127.0.0.1:{client_phone.port}"
    call_events = start_call_events
    async with running_api(settings, features=(call_events, start_sip)) as running:
        yield running


async def new_client(api: RunningApi, token: str, phone: str, manager_id: int) -> dict:
    async with api.client(token) as http:
        r = await http.post(
            "/clients",
            json={"name": "Петров Иван", "phones": [{"number": phone}], "manager_id": manager_id},
        )
        assert r.status_code == 201, r.text
        return r.json()


async def calls_on(api: RunningApi, token: str, client_id: int) -> list[dict]:
    """The card's call communications (one is written when its call ends)."""
    async with asyncio.timeout(10), api.client(token) as http:
        while True:
            r = await http.get(f"/clients/{client_id}/communications", params={"kind": "call"})
            items = r.json()["items"]
            if items:
                return items
            await asyncio.sleep(0.05)


async def test_a_trunk_call_pops_the_card_and_lands_with_its_recording(
    sip_api: RunningApi, actors: dict[Role, Actor], tmp_path: Path, settings: Settings
) -> None:
    api, manager = sip_api, actors[Role.MANAGER]
    async with api.client(manager.token) as http:
        pbx = (await http.get("/links")).json()["pbx"]
    assert (pbx["configured"], pbx["up"]) == (True, True)  # the bridge is the PBX here
    known = await new_client(api, manager.token, "8 (916) 123-45-67", manager.user.id)
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        caller = await start_sipp("caller.xml", tmp_path, target=settings.sip_bind, pause_ms=2500)
        pop = await sock.next_of("call.ringing")
        assert pop["data"]["agent"] == "101"
        assert pop["data"]["client"]["id"] == known["id"]
        assert (await sock.next_of("call.answered"))["data"]["agent"] == "101"
        assert (await sock.next_of("call.ended"))["data"]["disposition"] == "answered"
        assert await caller.wait() == 0, caller.log()
    [call] = await calls_on(api, manager.token, known["id"])
    assert call["direction"] == "inbound" and call["status"] == "answered"
    assert call["details"]["agents"] == ["101"]
    assert call["details"]["talk_s"] == pytest.approx(2.5, abs=0.8)
    async with api.client(manager.token) as http:
        rec = await http.get(f"/recordings/{call['details']['recording_id']}")
    assert rec.status_code == 200
    wav = tmp_path / "served.wav"
    wav.write_bytes(rec.content)
    seconds, rms = wav_stats(wav)
    assert abs(seconds - call["details"]["talk_s"]) < 0.5 and rms > 500


async def test_click_to_call_through_the_bridge(
    sip_api: RunningApi, actors: dict[Role, Actor], client_phone: Sipp
) -> None:
    api, manager = sip_api, actors[Role.MANAGER]
    known = await new_client(api, manager.token, "+7 916 765-43-21", manager.user.id)
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        async with api.client(manager.token) as http:
            r = await http.post(
                f"/clients/{known['id']}/call", json={"phone_id": known["phones"][0]["id"]}
            )
        assert r.status_code == 202, r.text
        call_row = r.json()["call"]["id"]
        await sock.next_of("call.originating")
        assert (await sock.next_of("call.answered", within=15))["data"]["id"] == call_row
        ended = await sock.next_of("call.ended", within=15)
        assert (ended["data"]["id"], ended["data"]["disposition"]) == (call_row, "answered")
    assert await client_phone.wait() == 0, client_phone.log()
    assert client_phone.received("INVITE") == 1
    [call] = await calls_on(api, manager.token, known["id"])
    assert call["direction"] == "outbound" and call["status"] == "answered"
    assert call["details"]["recording_id"] is not None


async def test_a_manager_with_a_sip_uri_on_the_profile_is_rung_there(
    sip_api: RunningApi, actors: dict[Role, Actor], phone: Sipp, tmp_path: Path, settings: Settings
) -> None:
    """The registrar's phone (`phone`) stays silent: the bridge dials the URI an admin set,
    for a trunk call and for click-to-call."""
    api, manager = sip_api, actors[Role.MANAGER]
    own = await start_sipp("phone.xml", tmp_path, pause_ms=500, rtp_echo=True, calls=2)
    await own.listening()
    async with api.client(actors[Role.ADMIN].token) as http:
        uri = f"sip:ivanov@127.0.0.1:{own.port}"
        r = await http.patch(f"/users/{manager.user.id}", json={"sip_address": uri})
        assert r.status_code == 200, r.text
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        caller = await start_sipp("caller.xml", tmp_path, target=settings.sip_bind, pause_ms=1000)
        assert (await sock.next_of("call.ringing"))["data"]["agent"] == "101"
        assert (await sock.next_of("call.answered"))["data"]["agent"] == "101"
        assert (await sock.next_of("call.ended"))["data"]["disposition"] == "answered"
        assert await caller.wait() == 0, caller.log()
        known = await new_client(api, manager.token, "+7 916 765-43-21", manager.user.id)
        async with api.client(manager.token) as http:
            r = await http.post(
                f"/clients/{known['id']}/call", json={"phone_id": known["phones"][0]["id"]}
            )
        assert r.status_code == 202, r.text
        assert (await sock.next_of("call.ended", within=20))["data"]["disposition"] == "answered"
    assert await own.wait() == 0, own.log()
    assert own.received("INVITE") == 2 and phone.received("INVITE") == 0
