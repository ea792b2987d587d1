"""The card in brief as the screen-pop shows it: the client's open deals and open tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor, make_user
from support.server import RunningApi

from crm_api.accounts.models import Role
from crm_api.clients import service as clients
from crm_api.clients import summary


async def test_screen_pop_lists_open_deals_and_tasks(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager = actors[Role.MANAGER]
    async with api.client(manager.token) as http:
        client = (await http.post("/clients", json={"name": "Поп"})).json()
        open_deal = (
            await http.post(
                "/deals", json={"client_id": client["id"], "title": "Open", "amount": "10"}
            )
        ).json()
        closed = (
            await http.post("/deals", json={"client_id": client["id"], "title": "Won"})
        ).json()
        await http.post(f"/deals/{closed['id']}/close", json={"outcome": "won"})
        due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        task = (
            await http.post(
                "/tasks", json={"title": "Call", "deal_id": open_deal["id"], "due_at": due}
            )
        ).json()
        done = (await http.post("/tasks", json={"title": "Old", "client_id": client["id"]})).json()
        await http.post(f"/tasks/{done['id']}/done")
    async with db() as session:
        deals = await summary.open_deals(session, client["id"])
        tasks = await summary.open_tasks(session, client["id"])
    assert [(d.id, d.amount, d.stage) for d in deals] == [(open_deal["id"], "10.00", "Unsorted")]
    assert [(t.id, t.deal_id) for t in tasks] == [(task["id"], open_deal["id"])]


async def test_caller_card_is_the_pops_card(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager = actors[Role.MANAGER]
    async with db() as session:  # the card the PBX makes for an unknown number
        client, _ = await clients.find_or_create_by_phone(
            session, "+74951230099", source_code="incoming_call", load=()
        )
        await session.commit()
    async with api.client(manager.token) as http:
        r = await http.get(f"/clients/{client.id}/caller-card")
        assert r.status_code == 200, r.text
        fresh = r.json()
        assert (fresh["client"]["id"], fresh["client"]["is_new"]) == (client.id, True)
        assert (fresh["communications"], fresh["deals"], fresh["tasks"]) == ([], [], [])
        for n in range(summary.CARD_ITEMS + 1):
            r = await http.post("/deals", json={"client_id": client.id, "title": f"Deal {n}"})
            assert r.status_code == 201, r.text
        await http.post(f"/clients/{client.id}/notes", json={"body": "Перезвонить"})
        filled = (await http.get(f"/clients/{client.id}/caller-card")).json()
    async with db() as session:
        built = await summary.caller_card(session, client)
    assert filled == built.model_dump(mode="json")  # as a ringing call's frame carries it
    assert filled["client"]["is_new"] is False
    assert len(filled["deals"]) == summary.CARD_ITEMS
    assert [c["body"] for c in filled["communications"]] == ["Перезвонить"]


async def test_caller_card_is_refused_as_the_card_is(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    supervisor, manager = actors[Role.SUPERVISOR], actors[Role.MANAGER]
    async with db() as session:
        owner = await make_user(session, Role.MANAGER)
        await session.commit()
    async with api.client(supervisor.token) as http:
        r = await http.post("/clients", json={"name": "Чужой", "manager_id": owner.user.id})
        assert r.status_code == 201, r.text
        theirs = r.json()["id"]
    async with api.client(manager.token) as http:
        for client_id, status in ((theirs, 403), (999999, 404)):
            card = await http.get(f"/clients/{client_id}/card")
            pop = await http.get(f"/clients/{client_id}/caller-card")
            assert (pop.status_code, pop.json()) == (card.status_code, card.json())
            assert pop.status_code == status
