"""The card in brief as the screen-pop shows it: the client's open deals and open tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.server import RunningApi

from crm_api.accounts.models import Role
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
