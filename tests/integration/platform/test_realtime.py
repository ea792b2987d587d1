"""`/ws` on the in-process bus (SQLite) and the Redis bus (PostgreSQL): live card edits,
resuming after a reconnect (on the same worker or the other), fan-out across two API
workers, and a retried publish delivered once."""

from __future__ import annotations

import asyncio

import pytest
from support.factories import Actor
from support.server import RunningApi, running_api
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.platform.realtime.frames import Audience, Frame


async def _card(api: RunningApi, actor: Actor, name: str) -> dict:
    async with api.client(actor.token) as http:
        r = await http.post("/clients", json={"name": name})
        assert r.status_code == 201
        return r.json()


async def test_two_browsers_on_one_card_see_each_others_edits(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager, supervisor = actors[Role.MANAGER], actors[Role.SUPERVISOR]
    card = await _card(api, manager, "Фёдоров Илья")
    async with (
        open_socket(api.ws_url, manager.token) as a,
        open_socket(api.ws_url, supervisor.token) as b,
    ):
        sa, sb = Socket(a), Socket(b)
        await sa.next_of("hello")
        await sb.next_of("hello")
        for s in (sa, sb):
            await s.send("watch", client_id=card["id"])
            assert (await s.next_of("watching"))["data"]["client_id"] == card["id"]
        async with api.client(supervisor.token) as http:
            r = await http.patch(f"/clients/{card['id']}", json={"address": "Казань"})
            assert r.status_code == 200
        for s in (sa, sb):
            frame = await s.next_of("client.updated")
            assert frame["data"]["client"]["address"] == "Казань"
            assert frame["id"]
        await sa.send("unwatch", client_id=card["id"])
        await sa.send("ping")  # answered after the unwatch is done
        await sa.next_of("pong")
        async with api.client(manager.token) as http:
            await http.patch(f"/clients/{card['id']}", json={"address": "Самара"})
        assert (await sb.next_of("client.updated"))["data"]["client"]["address"] == "Самара"
        hub = api.app.state.services.hub
        assert not [
            f for f in await sa.settle(hub, manager.user.id) if f["type"] == "client.updated"
        ]


async def test_a_card_of_another_manager_cannot_be_watched(
    api: RunningApi, actors: dict[Role, Actor], db
) -> None:
    from support.factories import make_user

    async with db() as session:
        other = await make_user(session, Role.MANAGER)
        await session.commit()
    theirs = await _card(api, other, "Чужой")
    async with open_socket(api.ws_url, actors[Role.MANAGER].token) as ws:
        s = Socket(ws)
        await s.next_of("hello")
        await s.send("watch", client_id=theirs["id"])
        assert "cannot watch" in (await s.next_of("error"))["data"]["message"]
        await ws.send("this is not json")
        assert (await s.next_of("error"))["data"]["message"] == "malformed frame"


async def test_a_reconnecting_socket_gets_what_it_missed_or_resync(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    hub = api.app.state.services.hub
    async with open_socket(api.ws_url, manager.token) as ws:
        s = Socket(ws, checked=False)  # made-up frames
        await s.next_of("hello")
        await hub.notify("task.due", {"n": 1}, users=[manager.user.id])
        last = (await s.next_of("task.due"))["id"]
    # While the socket is away: two frames for this user, one for somebody else.
    await hub.notify("task.due", {"n": 2}, users=[manager.user.id])
    await hub.notify("task.due", {"n": 99}, users=[actors[Role.OPERATOR].user.id])
    await hub.notify("call.ringing", {"n": 3}, roles=["manager"])
    async with open_socket(api.ws_url, manager.token, since=last) as ws:
        s = Socket(ws, checked=False)  # made-up frames
        await s.next_of("hello")
        replayed = [f for f in s.frames if f["type"] != "hello"]
        assert [f["data"]["n"] for f in replayed] == [2, 3]
        await hub.notify("task.due", {"n": 4}, users=[manager.user.id])
        assert (await s.next_of("task.due"))["data"]["n"] == 4
    async with open_socket(api.ws_url, manager.token, since="1-0") as ws:
        assert (await Socket(ws).next_of("resync"))["type"] == "resync"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_frames_fan_out_across_two_api_workers(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    card = await _card(api, manager, "Николаев Роман")
    async with running_api(api.settings) as second, open_socket(second.ws_url, manager.token) as ws:
        s = Socket(ws)
        await s.next_of("hello")
        await s.send("watch", client_id=card["id"])
        await s.next_of("watching")
        async with api.client(manager.token) as http:  # the edit lands on worker one
            await http.patch(f"/clients/{card['id']}", json={"name": "Николаев Роман Ильич"})
        frame = await s.next_of("client.updated")
        assert frame["data"]["client"]["name"] == "Николаев Роман Ильич"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_socket_resuming_on_the_other_worker_gets_each_missed_frame_once(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    """Frames keep coming from worker one while the socket reconnects to worker two: its
    replay of the backlog and the live frames meet without a gap or a repeat."""
    manager = actors[Role.MANAGER]
    hub = api.app.state.services.hub
    last_n = 200
    sent = 0

    async def publish(upto: int) -> None:
        nonlocal sent
        while sent < upto:
            sent += 1
            await hub.notify("task.due", {"n": sent}, users=[manager.user.id])
            await asyncio.sleep(0.002)  # a steady flow, so some land during the resume

    async with open_socket(api.ws_url, manager.token) as ws:
        s = Socket(ws, checked=False)  # made-up frames
        await s.next_of("hello")
        await publish(1)
        last = (await s.next_of("task.due"))["id"]
    async with running_api(api.settings) as other:
        await publish(50)  # missed while away
        publishing = asyncio.create_task(publish(last_n))
        async with open_socket(other.ws_url, manager.token, since=last) as ws:
            s = Socket(ws, checked=False)  # made-up frames
            while (await s.next_of("task.due"))["data"]["n"] != last_n:
                pass
        await publishing
    assert [f["data"]["n"] for f in s.frames if f["type"] == "task.due"] == list(
        range(2, last_n + 1)
    )


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_frame_published_again_after_an_error_reaches_a_socket_once(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    """A publish whose reply Redis never sent (it stopped right after running the script)
    raises, yet went out; the call-event consumer publishes the same frame again."""
    manager = actors[Role.MANAGER]
    hub = api.app.state.services.hub
    audience = Audience(user_ids=frozenset({manager.user.id}))
    retried = Frame(type="task.due", data={"n": 1}, audience=audience)
    async with open_socket(api.ws_url, manager.token) as ws:
        s = Socket(ws, checked=False)  # made-up frames
        await s.next_of("hello")
        await hub.publish(retried)
        await hub.publish(retried)
        await hub.publish(Frame(type="task.due", data={"n": 2}, audience=audience))
        while (await s.next_of("task.due"))["data"]["n"] != 2:
            pass
    assert [f["data"]["n"] for f in s.frames if f["type"] == "task.due"] == [1, 2]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_resume_skips_the_copy_of_a_frame_sent_before_it(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    """The retried publish landed after another frame the socket already had: resuming
    from that frame replays neither copy."""
    manager = actors[Role.MANAGER]
    hub = api.app.state.services.hub
    audience = Audience(user_ids=frozenset({manager.user.id}))
    retried = Frame(type="task.due", data={"n": 1}, audience=audience)
    await hub.publish(retried)
    last = await hub.publish(Frame(type="task.due", data={"n": 2}, audience=audience))
    await hub.publish(retried)
    await hub.publish(Frame(type="task.due", data={"n": 3}, audience=audience))
    async with open_socket(api.ws_url, manager.token, since=last.id) as ws:
        s = Socket(ws, checked=False)  # made-up frames
        await s.next_of("hello")
    assert [f["data"]["n"] for f in s.frames if f["type"] == "task.due"] == [3]
