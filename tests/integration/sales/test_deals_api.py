"""The deals pipeline through the real HTTP API, on SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.server import RunningApi
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.clients.timeline.models import CommDirection, CommKind, Communication
from crm_api.sales.models import DealStageVisit


async def _client(api: RunningApi, actor: Actor, name: str = "ООО Ромашка") -> dict[str, Any]:
    async with api.client(actor.token) as http:
        r = await http.post("/clients", json={"name": name, "kind": "company"})
    assert r.status_code == 201, r.text
    return r.json()


async def _stages(api: RunningApi, actor: Actor) -> dict[str, dict[str, Any]]:
    async with api.client(actor.token) as http:
        r = await http.get("/deal-stages")
    assert r.status_code == 200, r.text
    return {s["code"] or s["name"]: s for s in r.json()["items"]}


async def test_seeded_stages_and_admin_edits(api: RunningApi, actors: dict[Role, Actor]) -> None:
    stages = await _stages(api, actors[Role.MANAGER])
    assert [s["name"] for s in stages.values()] == [
        "Unsorted",
        "First contact",
        "Negotiation",
        "Deciding",
        "Contract approval",
        "Won",
        "Lost",
    ]
    assert stages["unsorted"]["name_ru"] == "Неразобранное"
    assert [s["kind"] for s in stages.values()][-2:] == ["won", "lost"]
    admin = actors[Role.ADMIN]
    async with api.client(admin.token) as http:
        r = await http.patch(f"/deal-stages/{stages['negotiation']['id']}", json={"name": "Talks"})
        assert r.status_code == 200 and r.json()["name"] == "Talks"
        r = await http.post("/deal-stages", json={"name": "Demo", "name_ru": "Демо"})
        assert r.status_code == 201
        demo = r.json()
        ids = [s["id"] for s in stages.values()]
        order = [ids[0], demo["id"], *ids[1:]]
        r = await http.put("/deal-stages/order", json={"ids": order})
        assert [s["id"] for s in r.json()["items"]] == order
        r = await http.put("/deal-stages/order", json={"ids": order[:-1]})
        assert r.status_code == 422  # every stage exactly once
    async with api.client(actors[Role.MANAGER].token) as http:
        r = await http.post("/deal-stages", json={"name": "Mine"})
        assert r.status_code == 403


async def test_deal_moves_closes_and_keeps_its_history(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager = actors[Role.MANAGER]
    client = await _client(api, manager)
    stages = await _stages(api, manager)
    async with (
        open_socket(api.ws_url, manager.token) as ws,
        api.client(manager.token) as http,
    ):
        conn = Socket(ws)
        await conn.next_of("hello")
        r = await http.post(
            "/deals",
            json={"client_id": client["id"], "title": "Поставка", "amount": "1500.50"},
        )
        assert r.status_code == 201, r.text
        deal = r.json()
        assert deal["stage_id"] == stages["unsorted"]["id"]
        assert deal["manager"]["id"] == manager.user.id
        assert deal["amount"] == "1500.50"

        r = await http.post(
            f"/deals/{deal['id']}/move", json={"stage_id": stages["deciding"]["id"]}
        )
        assert r.status_code == 200, r.text
        assert r.json()["stage_id"] == stages["deciding"]["id"]

        # Bad moves: unknown stage, straight into won, losing without a reason.
        r = await http.post(f"/deals/{deal['id']}/move", json={"stage_id": 999999})
        assert r.status_code == 422 and "unknown stage" in r.json()["error"]["message"]
        r = await http.post(f"/deals/{deal['id']}/move", json={"stage_id": stages["won"]["id"]})
        assert r.status_code == 422
        r = await http.post(f"/deals/{deal['id']}/close", json={"outcome": "lost"})
        assert (
            r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "reason"
        )

        r = await http.post(
            f"/deals/{deal['id']}/close",
            json={"outcome": "lost", "reason": "дорого", "satisfaction": 2},
        )
        assert r.status_code == 200, r.text
        closed = r.json()
        assert closed["stage_kind"] == "lost" and closed["lost_reason"] == "дорого"
        assert closed["closed_at"] is not None

        # A closed deal does not move, nor close again.
        r = await http.post(
            f"/deals/{deal['id']}/move", json={"stage_id": stages["unsorted"]["id"]}
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "deal_closed"
        r = await http.post(f"/deals/{deal['id']}/close", json={"outcome": "won"})
        assert r.status_code == 409

        frame = await conn.next_of("deal.updated")
        assert frame["data"]["deal"]["id"] == deal["id"]

        r = await http.get(f"/deals/{deal['id']}/history")
        visits = r.json()["items"]
    assert [v["stage_id"] for v in visits] == [
        stages["unsorted"]["id"],
        stages["deciding"]["id"],
        stages["lost"]["id"],
    ]
    assert visits[0]["left_at"] == visits[1]["entered_at"]
    assert visits[-1]["left_at"] is None
    async with db() as session:  # the refused requests wrote no visit
        n = await session.scalar(select(func.count()).select_from(DealStageVisit))
    assert n == 3


async def test_deal_card_shows_the_deals_communications_first(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager = actors[Role.MANAGER]
    client = await _client(api, manager)
    async with api.client(manager.token) as http:
        r = await http.post("/deals", json={"client_id": client["id"], "title": "A"})
        deal = r.json()
    now = datetime.now(UTC)
    async with db() as session:
        for i, linked in enumerate([True, False, False]):
            session.add(
                Communication(
                    client_id=client["id"],
                    kind=CommKind.NOTE,
                    direction=CommDirection.INTERNAL,
                    occurred_at=now - timedelta(hours=3 - i),  # the linked one is oldest
                    body=f"note {i}",
                    deal_id=deal["id"] if linked else None,
                )
            )
        await session.commit()
    async with api.client(manager.token) as http:
        r = await http.get(f"/deals/{deal['id']}/card")
    assert r.status_code == 200, r.text
    card = r.json()
    assert [c["body"] for c in card["communications"]] == ["note 0", "note 2", "note 1"]
    assert card["history"][0]["stage_id"] == deal["stage_id"]


async def test_managers_see_only_their_deals(api: RunningApi, actors: dict[Role, Actor]) -> None:
    supervisor, manager = actors[Role.SUPERVISOR], actors[Role.MANAGER]
    other_client = await _client(api, supervisor, "Чужой")
    async with api.client(supervisor.token) as http:
        r = await http.patch(
            f"/clients/{other_client['id']}", json={"manager_id": supervisor.user.id}
        )
        assert r.status_code == 200, r.text
        r = await http.post("/deals", json={"client_id": other_client["id"], "title": "Staff deal"})
        assert r.status_code == 201, r.text
        staff_deal = r.json()
    async with api.client(manager.token) as http:
        r = await http.get(f"/deals/{staff_deal['id']}")
        assert r.status_code == 404
        r = await http.get("/deals")
        assert r.json()["total"] == 0
        r = await http.post("/deals", json={"client_id": other_client["id"], "title": "Steal"})
        assert r.status_code == 403  # as the client card itself answers
    async with api.client(supervisor.token) as http:
        r = await http.get("/deals/board")
        columns = r.json()["items"]
    assert sum(c["count"] for c in columns) == 1
    assert columns[0]["deals"][0]["id"] == staff_deal["id"]


async def test_bad_deal_input_writes_nothing(api: RunningApi, actors: dict[Role, Actor]) -> None:
    manager = actors[Role.MANAGER]
    client = await _client(api, manager)
    async with api.client(manager.token) as http:
        for body in (
            {"client_id": client["id"], "title": "x", "amount": "-1"},
            {"client_id": client["id"], "title": "x", "amount": "1.234"},
            {"client_id": client["id"], "title": "x", "stage_id": 999999},
            {"client_id": client["id"], "title": "x", "manager_id": 999999},
            {"client_id": client["id"], "title": ""},
            {"client_id": 999999, "title": "x"},
        ):
            r = await http.post("/deals", json=body)
            assert r.status_code in (404, 422), (body, r.text)
            assert "error" in r.json()
        r = await http.get("/deals")
    assert r.json()["total"] == 0
