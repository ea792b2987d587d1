"""From the PBX wire to the operator's screen: the AMI simulator replays real Asterisk
captures over TCP, the real AMI adapter inside Callcard turns them into call events, and
managers see the card pop on their sockets and the call land once on the card. Click-to-call
goes back the other way as a real Originate; the FastAGI server answers the dialplan."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from support.call_events import pbx_handled
from support.captures import client_channel, split_at_bridge
from support.factories import Actor
from support.server import RunningApi
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.platform.settings import Settings
from telephony.ami.simulator import CAPTURES, AmiSimulator, linkedid_of, prepare


async def new_client(api: RunningApi, token: str, phone: str, manager_id: int | None) -> dict:
    async with api.client(token) as http:
        r = await http.post(
            "/clients",
            json={
                "name": "Сидоров Алексей",
                "phones": [{"number": phone}],
                "manager_id": manager_id,
            },
        )
        assert r.status_code == 201, r.text
        return r.json()


async def calls_on(api: RunningApi, token: str, client_id: int, n: int = 1) -> list[dict]:
    """The card's call communications, once `n` of them are there and everything the PBX
    sent so far was handled (so a duplicate would be among them)."""
    async with asyncio.timeout(10), api.client(token) as http:
        while True:
            r = await http.get(f"/clients/{client_id}/communications", params={"kind": "call"})
            items = r.json()["items"]
            if len(items) >= n:
                await wait_for(lambda: pbx_handled(api.app.state.services))
                r = await http.get(f"/clients/{client_id}/communications", params={"kind": "call"})
                return r.json()["items"]
            await asyncio.sleep(0.05)


def recording_name(events: list) -> str:
    for pairs in events:
        fields = dict(pairs)
        if fields.get("Variable") == "MIXMONITOR_FILENAME":
            return Path(fields["Value"]).name
    raise AssertionError("the capture has no MIXMONITOR_FILENAME")


async def test_answered_call_pops_and_lands_with_recording(
    telephony_api: RunningApi,
    pbx: AmiSimulator,
    actors: dict[Role, Actor],
    settings: Settings,
) -> None:
    api, manager, supervisor = telephony_api, actors[Role.MANAGER], actors[Role.SUPERVISOR]
    known = await new_client(api, supervisor.token, "8 (916) 123-45-67", manager.user.id)
    events = prepare("incoming-answered")
    shutil.copy(
        CAPTURES / "incoming-answered.wav", settings.recordings_dir / recording_name(events)
    )
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        await pbx.emit(events)
        pop = await sock.next_of("call.ringing")
        assert pop["data"]["agent"] == "101"
        assert pop["data"]["client"]["id"] == known["id"]
        assert (await sock.next_of("call.ended"))["data"]["disposition"] == "answered"
    [call] = await calls_on(api, manager.token, known["id"])
    assert call["direction"] == "inbound" and call["status"] == "answered"
    assert call["details"]["agents"] == ["101"]
    assert call["details"]["talk_s"] == pytest.approx(3, abs=0.6)
    async with api.client(manager.token) as http:
        rec = await http.get(f"/recordings/{call['details']['recording_id']}")
    assert rec.content == (CAPTURES / "incoming-answered.wav").read_bytes()


async def test_unknown_caller_gets_a_fresh_card_and_a_missed_call_one_callback_task(
    telephony_api: RunningApi, pbx: AmiSimulator, actors: dict[Role, Actor]
) -> None:
    api, manager, supervisor = telephony_api, actors[Role.MANAGER], actors[Role.SUPERVISOR]
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        await pbx.play("incoming-missed")
        pop = await sock.next_of("call.ringing")
        assert pop["data"]["client"]["is_new"] is True
        assert (await sock.next_of("call.ended"))["data"]["disposition"] == "missed"
    card_id = pop["data"]["client"]["id"]
    async with api.client(supervisor.token) as http:
        card = (await http.get(f"/clients/{card_id}")).json()
    assert [p["e164"] for p in card["phones"]] == ["+79167654321"]
    [call] = await calls_on(api, supervisor.token, card_id)
    assert call["status"] == "missed"
    async with api.client(supervisor.token) as http:
        tasks = (await http.get("/tasks", params={"client_id": card_id})).json()["items"]
    assert len(tasks) == 1


async def test_queue_call_rings_everyone_and_lands_once(
    telephony_api: RunningApi, pbx: AmiSimulator, team: dict[str, Actor], actors
) -> None:
    api = telephony_api
    sockets = {}
    async with (
        open_socket(api.ws_url, team["101"].token) as c1,
        open_socket(api.ws_url, team["102"].token) as c2,
        open_socket(api.ws_url, team["103"].token) as c3,
    ):
        for ext, conn in zip(("101", "102", "103"), (c1, c2, c3), strict=True):
            sockets[ext] = Socket(conn)
            await sockets[ext].next_of("hello")
        await pbx.play("queue-call")
        pops = {ext: await s.next_of("call.ringing") for ext, s in sockets.items()}
        ended = await sockets["102"].next_of("call.ended")
    assert {p["data"]["agent"] for p in pops.values()} == {"101", "102", "103"}
    assert len({p["data"]["client"]["id"] for p in pops.values()}) == 1
    assert ended["data"]["disposition"] == "answered"
    card_id = pops["102"]["data"]["client"]["id"]
    [call] = await calls_on(api, actors[Role.SUPERVISOR].token, card_id)
    assert call["details"]["answered_by"] == "102"
    assert call["user"]["id"] == team["102"].user.id


async def test_redirected_call_is_one_communication_with_both_agents(
    telephony_api: RunningApi, pbx: AmiSimulator, team: dict[str, Actor], actors
) -> None:
    api, supervisor = telephony_api, actors[Role.SUPERVISOR]
    known = await new_client(api, supervisor.token, "+7 916 999-00-11", None)
    await pbx.play("redirect")
    [call] = await calls_on(api, supervisor.token, known["id"])
    assert call["details"]["agents"] == ["101", "103"]
    assert call["status"] == "answered"


async def test_reconnect_mid_call_loses_and_duplicates_nothing(
    telephony_api: RunningApi, pbx: AmiSimulator, actors: dict[Role, Actor]
) -> None:
    api, supervisor = telephony_api, actors[Role.SUPERVISOR]
    known = await new_client(api, supervisor.token, "+79161234567", None)
    adapter = api.app.state.services.links.pbx
    events = prepare("incoming-answered")
    bridged = next(i for i, p in enumerate(events) if dict(p).get("Event") == "BridgeEnter")
    await pbx.emit(events[: bridged + 2])
    connects = adapter.status.connects
    pbx.drop_connections()
    async with asyncio.timeout(10):
        while adapter.status.connects == connects or not adapter.connected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await pbx.emit(events[bridged + 2 :])
    [call] = await calls_on(api, supervisor.token, known["id"])
    assert call["status"] == "answered"


async def test_click_to_call_originates_once_and_lands_on_the_card(
    telephony_api: RunningApi, pbx: AmiSimulator, actors: dict[Role, Actor]
) -> None:
    api, manager = telephony_api, actors[Role.MANAGER]
    client = await new_client(api, manager.token, "+7 916 123-45-67", manager.user.id)
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        async with api.client(manager.token) as http:
            r = await http.post(
                f"/clients/{client['id']}/call", json={"phone_id": client["phones"][0]["id"]}
            )
        assert r.status_code == 202, r.text
        call_row = r.json()["call"]["id"]
        await sock.next_of("call.originating")
        assert (await sock.next_of("call.answered", within=15))["data"]["id"] == call_row
        assert (await sock.next_of("call.ended", within=15))["data"]["id"] == call_row
    [originate] = pbx.actions_named("Originate")
    assert originate.get("Channel") == "PJSIP/101"
    assert originate.get("Exten") == "79161234567"
    assert originate.get("Variable").startswith("CRM_CALL_ID=crm-")
    [call] = await calls_on(api, manager.token, client["id"])
    assert call["direction"] == "outbound" and call["status"] == "answered"


async def test_click_to_call_to_an_offline_extension_says_why(
    telephony_api: RunningApi, pbx: AmiSimulator, actors: dict[Role, Actor]
) -> None:
    api, manager = telephony_api, actors[Role.MANAGER]
    pbx.originate_failures["101"] = 0  # Asterisk's reason 0: the channel could not be created
    client = await new_client(api, manager.token, "+7 916 123-45-67", manager.user.id)
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        async with api.client(manager.token) as http:
            r = await http.post(
                f"/clients/{client['id']}/call", json={"phone_id": client["phones"][0]["id"]}
            )
        assert r.status_code == 202, r.text
        failed = await sock.next_of("call.failed", within=15)
    assert failed["data"]["reason"] == "extension_offline"


async def test_fastagi_answers_the_dialplan_with_the_fallback_when_nobody_is_on_duty(
    telephony_api: RunningApi, settings: Settings
) -> None:
    env = (CAPTURES / "incoming-agi-routed.fastagi.txt").read_bytes().partition(b"\n\n")[0]
    host, _, port = settings.agi_bind.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(env + b"\n\n")
    command = await asyncio.wait_for(reader.readline(), 5)
    writer.write(b"200 result=1\n")
    writer.close()
    assert command == f'SET VARIABLE CALLCARD_ROUTE "{settings.routing_fallback}"\n'.encode()


async def route_over_fastagi(agi_bind: str, call_id: str) -> bytes:
    """The dialplan's AGI(agi://…/route,…) for `call_id`, as the capture's Asterisk asked it."""
    env = (CAPTURES / "incoming-agi-routed.fastagi.txt").read_bytes().partition(b"\n\n")[0]
    env = env.replace(b"agi_uniqueid: 1795386718.8", f"agi_uniqueid: {call_id}".encode())
    host, _, port = agi_bind.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(env + b"\n\n")
    command = await asyncio.wait_for(reader.readline(), 5)
    writer.write(b"200 result=1\n")
    writer.close()
    return command


async def test_a_fastagi_routed_call_pops_once_for_the_phone_that_rings(
    telephony_api: RunningApi,
    pbx: AmiSimulator,
    team: dict[str, Actor],
    settings: Settings,
) -> None:
    """The route's CallRouted (FastAGI) and the ring (AMI DialBegin) both reach the
    call-event service ahead of the ring's commit: the phone's user gets one pop."""
    api, manager = telephony_api, team["102"]
    events = prepare("incoming-agi-routed")
    call_id = next(filter(None, map(linkedid_of, events)))
    asked = next(i for i, p in enumerate(events) if dict(p).get("Event") == "AGIExecStart")
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        await pbx.emit(events[:asked])
        assert (await route_over_fastagi(settings.agi_bind, call_id)).startswith(b"SET VARIABLE")
        await pbx.emit(events[asked:])
        pop = await sock.next_of("call.ringing")
        assert pop["data"]["agent"] == "102" and pop["data"]["call_id"] == call_id
        assert (await sock.next_of("call.ended"))["data"]["disposition"] == "answered"
        await sock.settle(api.app.state.services.hub, manager.user.id)
    pops = [f for f in sock.frames if f["type"] == "call.ringing"]
    assert len(pops) == 1, pops


async def a_call_answered(pbx: AmiSimulator, sock: Socket) -> tuple[dict, str]:
    """An inbound call answered on the PBX, as `sock` sees it: the call and its client's
    channel (the one the PBX is told to hang up or transfer)."""
    await sock.next_of("hello")
    answered, _ = split_at_bridge("incoming-answered")
    await pbx.emit(answered)
    return (await sock.next_of("call.answered"))["data"], client_channel(answered)


async def test_the_agent_hangs_up_a_live_call_on_the_pbx_and_it_ends(
    telephony_api: RunningApi, pbx: AmiSimulator, actors: dict[Role, Actor]
) -> None:
    api, manager = telephony_api, actors[Role.MANAGER]
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        call, channel = await a_call_answered(pbx, sock)
        async with api.client(actors[Role.OPERATOR].token) as http:
            assert (await http.post(f"/calls/{call['id']}/hangup")).status_code == 403
        assert not pbx.actions_named("Hangup")
        async with api.client(manager.token) as http:
            r = await http.post(f"/calls/{call['id']}/hangup")
            assert r.status_code == 202, r.text
            [hangup] = pbx.actions_named("Hangup")
            assert hangup.get("Channel") == channel
            assert (await sock.next_of("call.ended"))["data"]["id"] == call["id"]
            again = await http.post(f"/calls/{call['id']}/hangup")
    assert again.status_code == 409 and again.json()["error"]["code"] == "call_not_live"
    assert len(pbx.actions_named("Hangup")) == 1


async def test_a_supervisor_transfers_a_live_call_to_another_phone_on_the_pbx(
    telephony_api: RunningApi, pbx: AmiSimulator, actors: dict[Role, Actor]
) -> None:
    api, supervisor = telephony_api, actors[Role.SUPERVISOR]
    async with open_socket(api.ws_url, supervisor.token) as conn:
        call, channel = await a_call_answered(pbx, Socket(conn))
    async with api.client(supervisor.token) as http:
        r = await http.post(f"/calls/{call['id']}/transfer", json={"extension": "102"})
    assert r.status_code == 202, r.text
    [redirect] = pbx.actions_named("Redirect")
    assert redirect.get("Channel") == channel
    assert (redirect.get("Exten"), redirect.get("Context")) == ("102", "internal")
