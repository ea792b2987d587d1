"""A manager sees only their own clients' cards: nothing of another manager's client
leaks through a deal card, a duplicate-phone answer, an import report or a company link."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor, make_user
from support.server import RunningApi

from crm_api.accounts.models import Role

SECRET = "Секретная заметка"


async def _other_managers_client(
    api: RunningApi, supervisor: Actor, owner: Actor, **extra: object
) -> dict:
    async with api.client(supervisor.token) as http:
        r = await http.post(
            "/clients",
            json={
                "name": "Чужой Клиент",
                "phones": [{"number": "+7 916 555-00-11"}],
                "emails": [{"email": "chuzhoy@example.ru"}],
                "manager_id": owner.user.id,
                **extra,
            },
        )
        assert r.status_code == 201, r.text
        client = r.json()
        r = await http.post(f"/clients/{client['id']}/notes", json={"body": SECRET})
        assert r.status_code == 201, r.text
    return client


async def _second_manager(db: async_sessionmaker[AsyncSession]) -> Actor:
    async with db() as session:
        other = await make_user(session, Role.MANAGER, extension="105")
        await session.commit()
    return other


async def test_deal_card_shows_no_communications_of_a_client_the_manager_cannot_see(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    supervisor, manager = actors[Role.SUPERVISOR], actors[Role.MANAGER]
    owner = await _second_manager(db)
    client = await _other_managers_client(api, supervisor, owner)
    async with api.client(supervisor.token) as http:
        r = await http.post(
            "/deals",
            json={
                "client_id": client["id"],
                "title": "Чужая сделка",
                "manager_id": manager.user.id,
            },
        )
        assert r.status_code == 201, r.text
        deal = r.json()
        staff_card = (await http.get(f"/deals/{deal['id']}/card")).json()
        assert [c["body"] for c in staff_card["communications"]] == [SECRET]
    async with api.client(manager.token) as http:
        assert (await http.get(f"/clients/{client['id']}")).status_code == 403
        r = await http.get(f"/deals/{deal['id']}/card")
        assert r.status_code == 200, r.text  # the deal is theirs
        assert r.json()["communications"] == []
        assert SECRET not in r.text


async def test_duplicate_phone_does_not_name_another_managers_client(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    supervisor, manager = actors[Role.SUPERVISOR], actors[Role.MANAGER]
    owner = await _second_manager(db)
    client = await _other_managers_client(api, supervisor, owner)
    async with api.client(manager.token) as http:
        for body in (
            {"name": "Проба", "phones": [{"number": "8 916 555 00 11"}]},
            {"name": "Проба", "emails": [{"email": "CHUZHOY@example.ru"}]},
        ):
            r = await http.post("/clients", json=body)
            assert r.status_code == 409, r.text
            error = r.json()["error"]
            assert error["code"] == "duplicate_contact"
            assert "client_id" not in error["details"] and "client_name" not in error["details"]
            assert "Чужой" not in r.text and f"#{client['id']}" not in r.text
    async with api.client(supervisor.token) as http:  # staff still learn which card
        r = await http.post(
            "/clients", json={"name": "Проба", "phones": [{"number": "89165550011"}]}
        )
        assert r.json()["error"]["details"]["client_id"] == client["id"]


async def test_import_errors_do_not_name_another_managers_client(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    supervisor, manager = actors[Role.SUPERVISOR], actors[Role.MANAGER]
    owner = await _second_manager(db)
    client = await _other_managers_client(api, supervisor, owner)
    body = "name,phones,emails\nПроба,+79165550011,\nПроба 2,,chuzhoy@example.ru\n".encode()
    async with api.client(manager.token) as http:
        r = await http.post("/clients/import", files={"file": ("c.csv", body, "text/csv")})
        assert r.status_code == 202, r.text
        for _ in range(400):
            job = (await http.get(f"/imports/{r.json()['id']}")).json()
            if job["status"] != "running":
                break
            await asyncio.sleep(0.05)
    assert job["status"] == "failed", job
    assert {e["field"] for e in job["errors"]} == {"phones", "emails"}
    text = str(job)
    assert "Чужой" not in text and f"#{client['id']}" not in text, text


async def test_company_name_does_not_leak_through_company_id(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    supervisor, manager = actors[Role.SUPERVISOR], actors[Role.MANAGER]
    owner = await _second_manager(db)
    async with api.client(supervisor.token) as http:
        r = await http.post(
            "/clients",
            json={"name": "ООО Тайна", "kind": "company", "manager_id": owner.user.id},
        )
        company = r.json()
    async with api.client(manager.token) as http:
        r = await http.post("/clients", json={"name": "Проба", "company_id": company["id"]})
        assert r.status_code == 422, r.text
        assert "Тайна" not in r.text
        mine = (await http.post("/clients", json={"name": "Моя"})).json()
        r = await http.patch(f"/clients/{mine['id']}", json={"company_id": company["id"]})
        assert r.status_code == 422, r.text
        assert "Тайна" not in r.text
