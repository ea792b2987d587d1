"""After the pop: an unknown number attached to an existing client, and the call's result."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.call_events import answered_call, call_sink
from support.factories import Actor
from support.server import RunningApi
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.models import Call
from crm_api.clients.models import Client
from crm_api.clients.timeline.models import Communication

OPERATOR = "104"


async def _ended_call(
    api: RunningApi, db: async_sessionmaker[AsyncSession], call_id: str, e164: str
) -> Call:
    """An answered call from `e164` on the operator's phone, once the journal has it."""
    sink = call_sink(api.app.state.services)
    digits = "8" + e164.removeprefix("+7")
    for event in answered_call(call_id, caller=digits, agent=OPERATOR, caller_e164=e164):
        await sink(event)

    async def ended() -> Call | None:
        async with db() as session:
            return await session.scalar(
                select(Call).where(Call.pbx_call_id == call_id, Call.state == "ended")
            )

    return await wait_for(ended)


async def a_client(api: RunningApi, actor: Actor, name: str, number: str) -> dict[str, Any]:
    async with api.client(actor.token) as http:
        r = await http.post("/clients", json={"name": name, "phones": [{"number": number}]})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_an_unknown_number_goes_to_the_client_the_operator_picks(
    calls_api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    operator = actors[Role.OPERATOR]
    known = await a_client(calls_api, operator, "Фролова Вера", "+79161110101")
    call = await _ended_call(calls_api, db, "attach-1", "+79997770011")
    made = call.client_id
    assert made is not None and made != known["id"]  # the PBX made a card for the number

    async with calls_api.client(operator.token) as http:
        r = await http.post(f"/calls/{call.id}/attach", json={"client_id": known["id"]})
        assert r.status_code == 200, r.text
        assert r.json()["client_id"] == known["id"]
        card = (await http.get(f"/clients/{known['id']}")).json()
        gone = await http.get(f"/clients/{made}")
    assert {p["e164"] for p in card["phones"]} == {"+79161110101", "+79997770011"}
    assert gone.status_code == 404
    async with db() as session:
        on_card = (
            await session.scalars(
                select(Communication.client_id).where(Communication.id == call.communication_id)
            )
        ).all()
    assert on_card == [known["id"]]  # the call is on the client's timeline

    # A number whose card someone has filled in is that card's: it is not taken away.
    call2 = await _ended_call(calls_api, db, "attach-2", "+79997770022")
    async with calls_api.client(operator.token) as http:
        await http.patch(f"/clients/{call2.client_id}", json={"name": "Кто-то Другой"})
        r = await http.post(f"/calls/{call2.id}/attach", json={"client_id": known["id"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_a_new_card"
    async with db() as session:
        kept = await session.get(Client, call2.client_id)
    assert kept is not None


async def test_a_number_attached_while_its_call_rings_is_on_the_client_when_answered(
    calls_api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    """Attached between the ring and the answer: the answer and the end say the client the
    operator picked, not the card the PBX made at the start."""
    operator = actors[Role.OPERATOR]
    known = await a_client(calls_api, operator, "Зуева Нина", "+79161110303")
    start, recording, ring, answer, end = answered_call(
        "attach-3", caller="89997770033", agent=OPERATOR, caller_e164="+79997770033"
    )
    sink = call_sink(calls_api.app.state.services)

    async def rung() -> Call | None:
        async with db() as session:
            call = await session.scalar(select(Call).where(Call.pbx_call_id == "attach-3"))
        return call if call is not None and OPERATOR in call.ringing else None

    async with open_socket(calls_api.ws_url, operator.token) as ws:
        sock = Socket(ws)
        await sock.next_of("hello")
        for event in (start, recording, ring):
            await sink(event)
        made = (await sock.next_of("call.ringing"))["data"]["client_id"]
        call = await wait_for(rung)
        async with calls_api.client(operator.token) as http:
            r = await http.post(f"/calls/{call.id}/attach", json={"client_id": known["id"]})
        assert r.status_code == 200, r.text
        await sink(answer)
        answered = await sock.next_of("call.answered")
        await sink(end)
        ended = await sock.next_of("call.ended")
    assert made != known["id"]
    assert answered["data"]["client_id"] == ended["data"]["client_id"] == known["id"]


async def test_a_number_attached_while_its_call_is_answered_logs_the_call_on_that_client(
    calls_api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    """Attached between the answer and the end: the end, which the service writes from the
    row it wrote at the answer, sees the change and logs the call on the client picked."""
    operator = actors[Role.OPERATOR]
    known = await a_client(calls_api, operator, "Котова Инна", "+79161110404")
    *talk, end = answered_call(
        "attach-4", caller="89997770044", agent=OPERATOR, caller_e164="+79997770044"
    )
    sink = call_sink(calls_api.app.state.services)
    async with open_socket(calls_api.ws_url, operator.token) as ws:
        sock = Socket(ws)
        await sock.next_of("hello")
        for event in talk:
            await sink(event)
        answered = (await sock.next_of("call.answered"))["data"]
        async with calls_api.client(operator.token) as http:
            r = await http.post(f"/calls/{answered['id']}/attach", json={"client_id": known["id"]})
        assert r.status_code == 200, r.text
        await sink(end)
        ended = await sock.next_of("call.ended")
    assert answered["client_id"] != known["id"]
    assert ended["data"]["client_id"] == known["id"]
    async with db() as session:
        logged = await session.scalar(
            select(Communication).where(Communication.external_id == "call:pbx:attach-4")
        )
    assert logged is not None and logged.client_id == known["id"]


async def test_the_call_result_is_saved_by_whoever_took_the_call(
    calls_api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    call = await _ended_call(calls_api, db, "result-1", "+79997770033")
    async with calls_api.client(actors[Role.OPERATOR].token) as http:
        r = await http.post(f"/calls/{call.id}/result", json={"result": "callback"})
        assert r.status_code == 200, r.text
        assert r.json()["result"] == "callback"
        bad = await http.post(f"/calls/{call.id}/result", json={"result": "maybe"})
        assert bad.status_code == 422
    async with calls_api.client(actors[Role.MANAGER].token) as http:  # not on this call
        r = await http.post(f"/calls/{call.id}/result", json={"result": "sale"})
        assert r.status_code == 403
    async with db() as session:
        saved = await session.get(Call, call.id)
    assert saved is not None and saved.result == "callback"
