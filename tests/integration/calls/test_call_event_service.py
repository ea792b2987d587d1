"""The call-event service fed the adapters' typed events: screen-pop, one communication
per call, recordings, missed calls, idempotent replays, bad entries."""

from __future__ import annotations

import shutil
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select
from support.call_events import answered_call, at, call_sink, handled
from support.factories import Actor, make_user, on_shift_all_week
from support.publish_faults import FailOnce
from support.server import RunningApi, running_api
from support.sms import make_client
from support.statements import statements_sent
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls import consumer
from crm_api.calls.consumer import CallService
from crm_api.calls.models import Call, CallParticipant, Recording
from crm_api.calls.pipeline import start_call_events
from crm_api.clients.timeline.models import Communication
from crm_api.platform.db import direct
from crm_api.platform.realtime.frames import Frame
from crm_api.platform.settings import Settings
from crm_api.tasks.models import Task
from telephony import events as ev
from telephony.ami.simulator import CAPTURES

CAPTURED_WAV = CAPTURES / "incoming-answered.wav"


async def feed(api: RunningApi, events: list[ev.CallEvent]) -> None:
    sink = call_sink(api.app.state.services)
    for event in events:
        await sink(event)


async def calls_of(api: RunningApi, token: str, client_id: int) -> list[dict]:
    async with api.client(token) as http:
        r = await http.get(f"/clients/{client_id}/communications", params={"kind": "call"})
        return r.json()["items"]


async def test_incoming_call_pops_the_card_and_lands_once_with_its_recording(
    calls_api: RunningApi, actors: dict[Role, Actor], settings
) -> None:
    api, manager, supervisor = calls_api, actors[Role.MANAGER], actors[Role.SUPERVISOR]
    async with api.client(supervisor.token) as http:
        known = (
            await http.post(
                "/clients",
                json={
                    "name": "Сидоров Алексей",
                    "phones": [{"number": "+7 916 123-45-67"}],
                    "manager_id": manager.user.id,
                },
            )
        ).json()
        await http.post(
            f"/clients/{known['id']}/notes", json={"body": "Ждёт коммерческое предложение"}
        )
    shutil.copy(CAPTURED_WAV, settings.recordings_dir / "1795386673.0.wav")
    async with (
        open_socket(api.ws_url, manager.token) as m,
        open_socket(api.ws_url, supervisor.token) as s,
        open_socket(api.ws_url, actors[Role.OPERATOR].token) as o,
    ):
        sm, ss, so = Socket(m), Socket(s), Socket(o)
        for sock in (sm, ss, so):
            await sock.next_of("hello")
        await feed(api, answered_call("1795386673.0"))
        for sock in (sm, ss):
            pop = await sock.next_of("call.ringing")
            assert pop["data"]["agent"] == "101"
            assert pop["data"]["client"]["id"] == known["id"]
            assert pop["data"]["client"]["is_new"] is False
            assert pop["data"]["client"]["manager"]["id"] == manager.user.id
            assert pop["data"]["communications"][0]["body"] == "Ждёт коммерческое предложение"
            assert (await sock.next_of("call.answered"))["data"]["agent"] == "101"
            ended = await sock.next_of("call.ended")
            assert ended["data"]["disposition"] == "answered"
        # Not their call: nothing of it came before a frame published after it ended.
        await so.settle(api.app.state.services.hub, actors[Role.OPERATOR].user.id)
        assert not [f for f in so.frames if f["type"].startswith("call.")]
    items = await calls_of(api, manager.token, known["id"])
    assert len(items) == 1
    call = items[0]
    assert call["direction"] == "inbound" and call["status"] == "answered"
    assert call["user"]["id"] == manager.user.id
    details = call["details"]
    assert details["talk_s"] == 3.0 and details["ring_s"] == 2.2 and details["agents"] == ["101"]
    assert details["caller"] == "+79161234567"
    rec = details["recording_id"]
    assert rec is not None
    async with api.client(manager.token) as http:
        full = await http.get(f"/recordings/{rec}")
        assert full.status_code == 200 and full.headers["content-type"] == "audio/wav"
        assert full.content == CAPTURED_WAV.read_bytes()
        part = await http.get(f"/recordings/{rec}", headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == CAPTURED_WAV.read_bytes()[1000:2000]
    async with api.client(actors[Role.OPERATOR].token) as http:
        assert (await http.get(f"/recordings/{rec}")).status_code == 403  # not on that call
    # A replay (adapter reconnect) writes and pushes nothing new.
    await feed(api, answered_call("1795386673.0"))
    await wait_for(lambda: handled(api.app.state.services))
    assert len(await calls_of(api, manager.token, known["id"])) == 1


async def test_unknown_number_gets_a_fresh_card_and_a_missed_call_is_followed_up(
    calls_api: RunningApi, actors: dict[Role, Actor], settings, db
) -> None:
    api, manager = calls_api, actors[Role.MANAGER]
    async with db() as session:  # the routing policy's pick for the callback
        await on_shift_all_week(session, manager.user)
        await session.commit()
    (settings.recordings_dir / "m1.wav").write_bytes(b"RIFF" + b"\0" * 40)  # header-only
    events = [
        ev.CallStarted(
            call_id="m1",
            at=at(0),
            direction=ev.Direction.INBOUND,
            caller="89167654321",
            callee="74951234567",
            did="74951234567",
        ),
        ev.RecordingStarted(call_id="m1", at=at(0.1), file="/var/spool/asterisk/monitor/m1.wav"),
        ev.CallRinging(call_id="m1", at=at(0.2), agent="101", caller="+79167654321"),
        ev.CallEnded(
            call_id="m1",
            at=at(15.2),
            direction=ev.Direction.INBOUND,
            disposition=ev.Disposition.MISSED,
            cause=19,
            caller="+79167654321",
            callee="74951234567",
            ring_s=15.0,
            talk_s=0.0,
        ),
    ]
    async with open_socket(api.ws_url, manager.token) as m:
        sm = Socket(m)
        await sm.next_of("hello")
        await feed(api, events)
        pop = await sm.next_of("call.ringing")
        assert pop["data"]["client"]["is_new"] is True
        assert pop["data"]["client"]["name"] == "+7 916 765-43-21"
        missed = await sm.next_of("call.missed")
        client_id = missed["data"]["client_id"]
    async with api.client(manager.token) as http:
        card = (await http.get(f"/clients/{client_id}")).json()
        assert card["phones"][0]["e164"] == "+79167654321"
        assert card["lead_source"]["name"] == "Входящий звонок"
    items = await calls_of(api, manager.token, client_id)
    assert [(c["status"], c["details"]["recording_id"]) for c in items] == [("missed", None)]


async def test_an_answered_call_closes_its_own_clients_callback_and_no_other(
    calls_api: RunningApi, actors: dict[Role, Actor], db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client who has no callback open costs the answered call's end no UPDATE of the
    tasks of its own (on PostgreSQL the end is one statement, which closes it in passing);
    one who has gets it closed, and another client's stays open."""
    api = calls_api
    services = api.app.state.services
    postgres = services.engine.dialect.name == "postgresql"
    start, _, ring, _, end = answered_call("cb1", caller="89161110001", caller_e164="+79161110001")
    unanswered = ev.Unanswered.NO_ANSWER
    missed = [start, ring, replace(end, disposition=ev.Disposition.MISSED, talk_s=0.0,
              agents=(), answered_by=None, unanswered=unanswered)]  # fmt: skip
    await feed(api, missed)
    await wait_for(lambda: handled(services))
    async with db() as session:
        [task] = (await session.scalars(select(Task))).all()
    assert task.done_at is None and task.kind == "missed_call"  # the supervisor's

    closing: list[str] = []

    def seen(statement: str) -> None:
        if statement.startswith("UPDATE tasks") or (postgres and "UPDATE tasks" in statement):
            closing.append(statement)

    async def call(call_id: str, caller: str, e164: str) -> None:
        # The end on its own, as it comes seconds after the answer.
        *live, end = answered_call(call_id, caller=caller, caller_e164=e164)
        await feed(api, live)
        await wait_for(lambda: handled(services))
        await feed(api, [end])
        await wait_for(lambda: handled(services))

    with statements_sent(services.sessions.kw["bind"], monkeypatch, seen):
        await call("ok2", "89162220002", "+79162220002")
        assert [s.startswith("WITH") for s in closing] == ([True] if postgres else [])
        async with db() as session:
            assert (await session.get_one(Task, task.id)).done_at is None
        await call("ok1", "89161110001", "+79161110001")
        assert len(closing) == (2 if postgres else 1)
    async with db() as session:
        assert (await session.get_one(Task, task.id)).done_at == at(5.2)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_an_answered_end_is_one_statement_unless_its_call_moved_meanwhile(
    calls_api: RunningApi, actors: dict[Role, Actor], db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the end of an answered call on its card writes in one statement, with
    no transaction: its row, its communication and who talked. A call another writer
    changed since this worker wrote it (its new number attached to a card people keep)
    gets nothing written by that statement, and is ended in a transaction on the card it
    is on now, once."""
    api, manager, supervisor = calls_api, actors[Role.MANAGER], actors[Role.SUPERVISOR]
    services = api.app.state.services
    sent: list[str] = []

    async def live(call_id: str, caller: str, e164: str) -> ev.CallEvent:
        *events, end = answered_call(call_id, caller=caller, caller_e164=e164)
        await feed(api, events)
        await wait_for(lambda: handled(services))
        return end

    async def ended(call_id: str) -> tuple[Call, list[Communication], list[int]]:
        async with db() as session:
            call = await session.scalar(select(Call).where(Call.pbx_call_id == call_id))
            assert call is not None
            comms = (await session.scalars(select(Communication).where(
                Communication.external_id == f"call:{call.pbx}:{call_id}"))).all()  # fmt: skip
            talked = (await session.scalars(select(CallParticipant.user_id).where(
                CallParticipant.call_id == call.id))).all()  # fmt: skip
        return call, list(comms), list(talked)

    end = await live("one1", "89164440004", "+79164440004")
    with statements_sent(services.engine, monkeypatch, sent.append):
        await feed(api, [end])
        await wait_for(lambda: handled(services))
    writes = [s.split(None, 1)[0] for s in sent if not s.startswith("SELECT")]
    assert writes == ["WITH"]  # no BEGIN, no INSERT or UPDATE of its own
    call, [comm], talked = await ended("one1")
    assert call.state == "ended" and call.communication_id == comm.id
    assert comm.client_id == call.client_id and comm.status == "answered"
    assert talked == [manager.user.id]

    card = {"name": "Кузнецова Мария", "phones": [{"number": "+7 916 555-00-05"}]}
    async with api.client(supervisor.token) as http:
        kept = (await http.post("/clients", json=card)).json()
    end = await live("moved1", "89167770007", "+79167770007")
    moving, _, _ = await ended("moved1")
    async with api.client(supervisor.token) as http:
        r = await http.post(f"/calls/{moving.id}/attach", json={"client_id": kept["id"]})
        assert r.status_code == 200, r.text
    sent.clear()
    with statements_sent(services.engine, monkeypatch, sent.append):
        await feed(api, [end])
        await wait_for(lambda: handled(services))
    writes = [s.split(None, 1)[0] for s in sent if not s.startswith("SELECT")]
    assert writes[:2] == ["WITH", "BEGIN"]  # the statement wrote nothing: a transaction
    call, [comm], talked = await ended("moved1")
    assert call.state == "ended" and call.client_id == kept["id"]
    assert call.communication_id == comm.id and comm.client_id == kept["id"]
    assert talked == [manager.user.id]


async def test_a_recording_another_worker_wrote_is_offered_with_the_end_this_one_writes(
    calls_api: RunningApi, actors: dict[Role, Actor], db, settings: Settings
) -> None:
    """This worker wrote the call and its recording (a header-only file: nothing to offer),
    and another worker, or a run of it retried, wrote a second: the end offers that one."""
    api = calls_api
    services = api.app.state.services
    (settings.recordings_dir / "rw1.wav").write_bytes(b"RIFF" + bytes(40))
    start, recording, ring, answer, end = answered_call("rw1")
    await feed(api, [start, recording, ring, answer])
    await wait_for(lambda: handled(services))
    async with db() as session:
        call = await session.scalar(select(Call).where(Call.pbx_call_id == "rw1"))
        assert call is not None and call.state == "answered"
        elsewhere = Recording(
            call_id=call.id, pbx_path="/elsewhere/rw1-2.wav", file_name="rw1-2.wav"
        )
        session.add(elsewhere)
        await session.commit()
    await feed(api, [end])
    await wait_for(lambda: handled(services))
    async with db() as session:
        call = await session.get_one(Call, call.id)
        assert call.state == "ended" and call.communication_id is not None
        comm = await session.get_one(Communication, call.communication_id)
    assert comm.details["recording_id"] == elsewhere.id


async def test_a_call_first_heard_of_at_its_ring_is_written_once_and_ends_on_its_card(
    calls_api: RunningApi, actors: dict[Role, Actor], db
) -> None:
    """`callcard telephony` came up while the call was already ringing (its start went by
    before): the ring writes the call, and the answer and the end land on that row."""
    api, manager = calls_api, actors[Role.MANAGER]
    services = api.app.state.services
    async with api.client(actors[Role.SUPERVISOR].token) as http:
        card = await make_client(http, "Орлов Пётр", "8 916 555-44-33", manager_id=manager.user.id)
    _, _, ring, answer, end = answered_call("midway1", caller="89165554433",
                                            caller_e164="+79165554433")  # fmt: skip
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        await feed(api, [ring, answer])
        await wait_for(lambda: handled(services))
        await feed(api, [ring, end])  # the ring resent with the end: no second pop
        ended = await sock.next_of("call.ended")
        await sock.settle(services.hub, manager.user.id)
    assert [f["type"] for f in sock.frames].count("call.ringing") == 1
    assert ended["data"]["state"] == "ended" and ended["data"]["agents"] == ["101"]
    async with db() as session:
        [call] = (await session.scalars(select(Call).where(Call.pbx_call_id == "midway1"))).all()
        assert (call.state, call.ringing, call.answered_by) == ("ended", ["101"], "101")
        comm = await session.get_one(Communication, call.communication_id)
    assert comm.client_id == card["id"] and comm.status == "answered"


@pytest.mark.parametrize("recorded", [False, True], ids=["start-ring", "start-recording-ring"])
async def test_a_start_and_its_ring_read_together_pop_before_the_ring_is_written(
    calls_api: RunningApi,
    actors: dict[Role, Actor],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    recorded: bool,
) -> None:
    """The ring came right behind the start, in the same run (no time between them for
    the card to be prepared), alone or after the recording's start as Asterisk sends them
    (MixMonitor in the dialplan before Dial): the start is written alone, as when they
    come apart, and the pop goes out ahead of the ring's write, not after a transaction
    of them all."""
    api, manager = calls_api, actors[Role.MANAGER]
    services = api.app.state.services
    async with api.client(actors[Role.SUPERVISOR].token) as http:
        await make_client(http, "Сидоров Алексей", "8 916 123-45-67", manager_id=manager.user.id)
    service = CallService(services.sessions, services.hub, region=settings.default_region,
                          recordings_dir=settings.recordings_dir, tz=settings.tz,
                          pbx=settings.pbx_name)  # fmt: skip
    order: list[str] = []

    def seen(statement: str) -> None:
        order.append(" ".join(statement.split()[:3]))

    publish, publish_now = services.hub.publish, services.hub.publish_now

    async def noted(frame: Frame) -> Frame:
        order.append(frame.type)
        return await publish(frame)

    def noted_now(frame: Frame) -> Coroutine[Any, Any, Frame]:  # the pop ahead
        order.append(frame.type)
        return publish_now(frame)

    services.hub.publish, services.hub.publish_now = noted, noted_now
    start, recording, ring, _, _ = answered_call("together1")
    try:
        with statements_sent(services.sessions.kw["bind"], monkeypatch, seen):
            await service.handle([start, recording, ring] if recorded else [start, ring])
    finally:
        services.hub.publish, services.hub.publish_now = publish, publish_now
    pop = order.index("call.ringing")
    assert "INSERT INTO calls" in order[:pop], order  # the call it pops is written
    assert "UPDATE calls SET" in order[pop:], order  # its ring after the pop
    assert not [s for s in order[:pop] if s.startswith(("BEGIN", "UPDATE"))], order


async def test_a_new_numbers_start_goes_to_one_transaction_and_an_anonymous_one_to_none(
    calls_api: RunningApi, db, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new number's card is made with its call in a session: found new without a
    transaction, the start is not tried in a direct transaction first (to be rolled back
    at the card). A withheld number has no card to make: its start needs no transaction."""
    services = calls_api.app.state.services
    service = CallService(services.sessions, services.hub, region=settings.default_region,
                          recordings_dir=settings.recordings_dir, tz=settings.tz,
                          pbx=settings.pbx_name)  # fmt: skip
    direct_transactions: list[bool] = []
    connect = consumer.connect_direct

    def counted(*args: Any, transaction: bool = False) -> Any:
        direct_transactions.append(transaction)
        return connect(*args, transaction=transaction)

    monkeypatch.setattr(consumer, "connect_direct", counted)
    new_start = answered_call("new1", caller="89163330003", caller_e164="+79163330003")[0]
    withheld = replace(answered_call("anon1")[0], caller="anonymous", caller_name="Anonymous")
    await service.handle([new_start])
    await service.handle([withheld])
    assert direct_transactions == [False, False]  # each start's try without a transaction
    async with db() as session:
        calls = {c.pbx_call_id: c for c in (await session.scalars(select(Call))).all()}
    assert calls["new1"].client_id is not None and calls["anon1"].client_id is None
    assert calls["anon1"].caller is None and calls["new1"].caller == "+79163330003"


async def test_a_new_number_first_heard_of_at_its_ring_pops_its_fresh_card_unread(
    calls_api: RunningApi, actors: dict[Role, Actor], db, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The start of a new number's call went by this worker (another one's, or before a
    restart): its ring makes the card and pops it new, reading no lists a card made this
    moment cannot have."""
    services = calls_api.app.state.services
    published: list[Frame] = []
    publish = services.hub.publish

    async def kept(frame: Frame) -> Frame:
        published.append(frame)
        return await publish(frame)

    monkeypatch.setattr(services.hub, "publish", kept)
    service = CallService(services.sessions, services.hub, region=settings.default_region,
                          recordings_dir=settings.recordings_dir, tz=settings.tz,
                          pbx=settings.pbx_name)  # fmt: skip
    ring = answered_call("ringfirst1", caller="89168880008", caller_e164="+79168880008")[2]
    lists: list[str] = []

    def seen(statement: str) -> None:
        if "UNION ALL" in statement:
            lists.append(statement)

    with statements_sent(services.engine, monkeypatch, seen):
        await service.handle([ring])
    assert lists == []
    [pop] = [f for f in published if f.type == "call.ringing"]
    assert pop.data["agent_user_id"] == actors[Role.MANAGER].user.id
    assert pop.data["client"]["is_new"] is True and pop.data["client"]["name"]
    assert (pop.data["communications"], pop.data["deals"], pop.data["tasks"]) == ([], [], [])
    async with db() as session:
        call = await session.scalar(select(Call).where(Call.pbx_call_id == "ringfirst1"))
    assert call is not None and call.client_id == pop.data["client"]["id"]


async def test_queue_call_pops_every_member_and_is_one_communication(
    calls_api: RunningApi, actors: dict[Role, Actor], db
) -> None:
    from support.factories import make_user

    api = calls_api
    async with db() as session:
        m102 = await make_user(session, Role.MANAGER, extension="102")
        m103 = await make_user(session, Role.MANAGER, extension="103")
        await session.commit()
    members = {"101": actors[Role.MANAGER], "102": m102, "103": m103}
    events: list[ev.CallEvent] = [
        ev.CallStarted(
            call_id="q1",
            at=at(0),
            direction=ev.Direction.INBOUND,
            caller="84951112233",
            callee="74951234569",
            did="74951234569",
        ),
        *[
            ev.CallRinging(call_id="q1", at=at(0.5), agent=a, caller="+74951112233")
            for a in members
        ],
        ev.CallAnswered(call_id="q1", at=at(3.5), agent="102"),
        ev.CallEnded(
            call_id="q1",
            at=at(7.5),
            direction=ev.Direction.INBOUND,
            disposition=ev.Disposition.ANSWERED,
            cause=16,
            caller="+74951112233",
            ring_s=3.5,
            talk_s=4.0,
            agents=("102",),
            answered_by="102",
        ),
    ]
    sockets = {}
    async with (
        open_socket(api.ws_url, members["101"].token) as a,
        open_socket(api.ws_url, m102.token) as b,
        open_socket(api.ws_url, m103.token) as c,
    ):
        for ext, conn in zip(members, (a, b, c), strict=True):
            sockets[ext] = Socket(conn)
            await sockets[ext].next_of("hello")
        await feed(api, events)
        for ext, sock in sockets.items():
            pop = await sock.next_of("call.ringing")
            assert pop["data"]["agent"] == ext
        assert (await sockets["102"].next_of("call.answered"))["data"]["answered_by"] == "102"
        client_id = (await sockets["102"].next_of("call.ended"))["data"]["client_id"]
    items = await calls_of(api, actors[Role.SUPERVISOR].token, client_id)
    assert len(items) == 1
    assert items[0]["details"]["answered_by"] == "102" and items[0]["user"]["id"] == m102.user.id


async def test_anonymous_and_internal_calls_make_no_card_and_garbage_is_skipped(
    calls_api: RunningApi, actors: dict[Role, Actor]
) -> None:
    api, supervisor = calls_api, actors[Role.SUPERVISOR]
    sink = call_sink(api.app.state.services)
    await sink.stream.add({"type": "NoSuchEvent", "call_id": "x"})
    await sink.stream.add({"type": "CallRinging", "call_id": "y"})  # missing fields
    await feed(
        api,
        [
            ev.CallStarted(
                call_id="a1",
                at=at(0),
                direction=ev.Direction.INBOUND,
                caller="anonymous",
                callee="74951234567",
            ),
            ev.CallRinging(call_id="a1", at=at(0.1), agent="101", caller="anonymous"),
            ev.CallEnded(
                call_id="a1",
                at=at(4),
                direction=ev.Direction.INBOUND,
                disposition=ev.Disposition.ABANDONED,
                cause=16,
                caller="anonymous",
                ring_s=4.0,
            ),
            ev.CallStarted(
                call_id="i1", at=at(0), direction=ev.Direction.INTERNAL, caller="101", callee="102"
            ),
            ev.CallEnded(
                call_id="i1",
                at=at(3),
                direction=ev.Direction.INTERNAL,
                disposition=ev.Disposition.ANSWERED,
                cause=16,
                caller="101",
                callee="102",
                talk_s=2.0,
                agents=("102",),
            ),
        ],
    )
    async with api.client(supervisor.token) as http:

        async def ended() -> list:
            items = (await http.get("/calls")).json()["items"]
            return items if len(items) == 2 else []

        calls = await wait_for(ended)
        assert {c["call_id"]: c["client_id"] for c in calls} == {"a1": None, "i1": None}
        assert (await http.get("/clients")).json()["total"] == 0
        r = await http.post(
            f"/calls/{calls[0]['id']}/score",
            json={"criteria": {"greeting": 5, "script": 3}, "comment": "Хорошо"},
        )
        assert r.status_code == 200 and r.json()["score"]["criteria"]["greeting"] == 5
        r = await http.post(f"/calls/{calls[0]['id']}/score", json={"criteria": {"greeting": 9}})
        assert r.status_code == 422
        assert (await http.get("/calls", params={"unscored": True})).json()["items"][0][
            "id"
        ] == calls[1]["id"]


async def test_click_to_call_without_a_pbx_is_a_clear_503(
    calls_api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    async with calls_api.client(manager.token) as http:
        card = (
            await http.post(
                "/clients", json={"name": "Клиент", "phones": [{"number": "+7 916 555-00-11"}]}
            )
        ).json()
        r = await http.post(
            f"/clients/{card['id']}/call", json={"phone_id": card["phones"][0]["id"]}
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "pbx_unavailable"
        r = await http.post(f"/clients/{card['id']}/call", json={"phone_id": 424242})
        assert (
            r.status_code == 422
            and r.json()["error"]["details"]["fields"][0]["field"] == "phone_id"
        )


async def test_hangup_and_transfer_without_a_pbx_are_a_clear_503(
    calls_api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    async with open_socket(calls_api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        await feed(calls_api, answered_call("1795386695.0")[:4])
        call = (await sock.next_of("call.answered"))["data"]
    async with calls_api.client(manager.token) as http:
        for r in (
            await http.post(f"/calls/{call['id']}/hangup"),
            await http.post(f"/calls/{call['id']}/transfer", json={"extension": "102"}),
        ):
            assert r.status_code == 503 and r.json()["error"]["code"] == "pbx_unavailable"
        r = await http.post(f"/calls/{call['id']}/transfer", json={"extension": "10 2"})
        assert r.status_code == 422
        assert (await http.post("/calls/424242/hangup")).status_code == 404


async def test_every_agent_rung_sees_the_call_end_not_only_the_clients_manager(
    calls_api: RunningApi, actors: dict[Role, Actor], db
) -> None:
    api, ringing_agent = calls_api, actors[Role.MANAGER]  # extension 101
    async with db() as session:
        owner = await make_user(session, Role.MANAGER, extension="102")
        await session.commit()
    async with api.client(actors[Role.SUPERVISOR].token) as http:
        r = await http.post(
            "/clients",
            json={"name": "Орлов Пётр", "phones": [{"number": "+7 916 555-44-33"}],
                  "manager_id": owner.user.id},
        )  # fmt: skip
        assert r.status_code == 201, r.text
    events = [
        ev.CallStarted(call_id="own1", at=at(0), direction=ev.Direction.INBOUND,
                       caller="+79165554433", callee="74951234567", did="74951234567"),
        ev.CallRinging(call_id="own1", at=at(0.2), agent="101", caller="+79165554433"),
        ev.CallEnded(call_id="own1", at=at(10), direction=ev.Direction.INBOUND,
                     disposition=ev.Disposition.ABANDONED, cause=16, ring_s=9.8),
    ]  # fmt: skip
    async with (
        open_socket(api.ws_url, ringing_agent.token) as a,
        open_socket(api.ws_url, owner.token) as o,
    ):
        agent_sock, owner_sock = Socket(a), Socket(o)
        await agent_sock.next_of("hello")
        await owner_sock.next_of("hello")
        await feed(api, events)
        await agent_sock.next_of("call.ringing")
        assert (await agent_sock.next_of("call.ended"))["data"]["disposition"] == "abandoned"
        assert (await owner_sock.next_of("call.missed"))["data"]["client_id"] == r.json()["id"]


async def test_a_start_and_ring_sent_again_to_a_worker_that_did_not_see_them_pop_nothing_new(
    settings: Settings, actors: dict[Role, Actor]
) -> None:
    """The PBX side sends a ringing call's start and ring again (the spool's resend after
    Redis lost them, a standby's resync) and the call is now another worker's (its
    partition moved, or the worker restarted): the phone already rang, so no second pop."""
    manager = actors[Role.MANAGER]
    call = answered_call("1795386690.0")
    start_and_ring = [call[0], call[2]]
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with (
        running_api(settings, features=(start_call_events,)) as first,
        open_socket(first.ws_url, manager.token) as conn,
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        await feed(first, start_and_ring)
        assert (await sock.next_of("call.ringing"))["data"]["ringing"] == ["101"]
    async with (
        running_api(settings, features=(start_call_events,)) as second,
        open_socket(second.ws_url, manager.token) as conn,
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        await feed(second, [*start_and_ring, *call[3:]])
        await sock.next_of("call.ended")
        await sock.settle(second.app.state.services.hub, manager.user.id)
    assert not [f for f in sock.frames if f["type"] == "call.ringing"]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_pop_and_answer_a_dead_worker_wrote_but_never_sent_come_from_the_next_one(
    settings: Settings, actors: dict[Role, Actor]
) -> None:
    """A worker wrote a call's start, ring and answer, then died before the pop went out
    (every publish of it failed). The worker that
    takes the call's partition over gets the run again, from the stream's pending
    entries, and sends the pop and the answer; each reaches the phone's socket once."""
    manager = actors[Role.MANAGER]
    call = answered_call("1795386702.0")
    written = [call[0], call[2], call[3]]  # the start, the ring and the answer: one run
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    # The phone's socket is on a worker of its own, which handles no call events.
    async with (
        running_api(settings) as web,
        open_socket(web.ws_url, manager.token) as conn,
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        async with running_api(settings, features=(start_call_events,)) as first:
            hub = first.app.state.services.hub
            dying = FailOnce(hub, "call.ringing", RuntimeError("died"), always=True)

            async def died() -> bool:  # its run was written: the pop is the first frame
                return bool(dying.failed)

            await feed(first, written)
            await wait_for(died)
        assert not [f for f in sock.frames if f["type"].startswith("call.")]
        async with running_api(settings, features=(start_call_events,)) as second:
            pop = await sock.next_of("call.ringing")
            assert pop["data"]["agent"] == "101"
            assert pop["data"]["client"]["name"] == "Иван"
            assert (await sock.next_of("call.answered"))["data"]["agent"] == "101"
            await feed(second, call[4:])
            await sock.next_of("call.ended")
            await wait_for(lambda: handled(second.app.state.services))
        await sock.settle(web.app.state.services.hub, manager.user.id)
    kinds = [f["type"] for f in sock.frames if f["type"].startswith("call.")]
    assert kinds == ["call.ringing", "call.answered", "call.ended"]


async def test_an_end_whose_frames_failed_after_its_commit_sends_each_frame_once_on_retry(
    calls_api: RunningApi, actors: dict[Role, Actor]
) -> None:
    """The end was written, then the worker failed (or died) before all of its frames went
    out: the end, handled again, finds the call ended and sends them again; each reaches
    the socket once (the copy of the one that did go out is dropped)."""
    api, manager = calls_api, actors[Role.MANAGER]  # extension 101, the client's manager
    hub = api.app.state.services.hub
    async with api.client(actors[Role.SUPERVISOR].token) as http:
        card = await make_client(http, "Орлов Пётр", "8 916 555-44-33", manager_id=manager.user.id)
    fault = FailOnce(hub, "call.missed", RuntimeError("the worker died here"))
    events = [
        ev.CallStarted(call_id="lost1", at=at(0), direction=ev.Direction.INBOUND,
                       caller="89165554433", callee="74951234567", did="74951234567"),
        ev.CallRinging(call_id="lost1", at=at(0.2), agent="101", caller="89165554433"),
        ev.CallEnded(call_id="lost1", at=at(12), direction=ev.Direction.INBOUND,
                     disposition=ev.Disposition.MISSED, cause=16, ring_s=11.8,
                     unanswered=ev.Unanswered.NO_ANSWER),
    ]  # fmt: skip
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        await feed(api, events)
        missed = await sock.next_of("call.missed")
        assert missed["data"]["client_id"] == card["id"]
        assert missed["data"]["assignee_id"] == manager.user.id
        await wait_for(lambda: handled(api.app.state.services))
        await sock.settle(hub, manager.user.id)
    assert fault.failed, "the publish of call.missed never failed"
    kinds = [f["type"] for f in sock.frames if f["type"].startswith("call.")]
    assert kinds == ["call.ringing", "call.ended", "call.missed"]
    async with api.client(actors[Role.SUPERVISOR].token) as http:
        journal = (await http.get("/calls")).json()["items"]
    assert [c["disposition"] for c in journal if c["call_id"] == "lost1"] == ["missed"]


@pytest.mark.parametrize("backend", ["postgres"])
async def test_the_statements_every_call_runs_are_compiled_before_the_first_call(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pop's card is a big statement: compiling it takes tens of ms, during which the
    process serves nothing. The call-event service compiles what every call runs when it
    starts, so the first calls after a restart do not wait for it."""
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(direct, "_PREPARED", {})  # as in a process that just started
    compiled: list[object] = []
    compile_now = direct._Prepared.__init__

    def noted(prepared: direct._Prepared, statement: Any, dialect: Any) -> None:
        compiled.append(statement)
        compile_now(prepared, statement, dialect)

    async with running_api(settings, features=(start_call_events,)) as api:
        monkeypatch.setattr(direct._Prepared, "__init__", noted)
        await feed(api, answered_call("compiled1")[:1])  # a start: its card is looked for
        await wait_for(lambda: handled(api.app.state.services))
    assert not [s for s in compiled if any(s is hot for hot in consumer.HOT_STATEMENTS)]
    assert consumer.POP_CARD_BY_PHONE in consumer.HOT_STATEMENTS
