"""The card in brief as the screen-pop shows it: the client's open deals and open tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor, make_user
from support.server import RunningApi
from support.statements import statements_sent

from crm_api.accounts.models import Role
from crm_api.clients import service as clients
from crm_api.clients import summary
from crm_api.clients.models import Client
from crm_api.clients.timeline import service as communications
from crm_api.clients.timeline.models import (
    CommDirection,
    CommKind,
    Communication,
    CommunicationComment,
)
from crm_api.platform.db.direct import connect_direct
from crm_api.platform.db.session import make_read_sessionmaker
from crm_api.sales.models import Deal, DealStage, StageKind
from crm_api.sales.money import from_minor
from crm_api.tasks.models import Task


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
        card = await summary.caller_card(session, await session.get_one(Client, client["id"]))
    assert [(d.id, d.amount, d.stage) for d in card.deals] == [
        (open_deal["id"], "10.00", "Unsorted")
    ]
    assert [(t.id, t.deal_id) for t in card.tasks] == [(task["id"], open_deal["id"])]


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


async def test_caller_cards_lists_keep_their_order_and_limits(
    db: async_sessionmaker[AsyncSession],
) -> None:
    """The pop's lists, read in one statement: the newest communications as the timeline
    pages them (comments included, an author gone or none), open deals by last change,
    open tasks by due date (the undated last)."""
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    async with db() as session:
        author = (await make_user(session, Role.MANAGER)).user
        client, _ = await clients.find_or_create_by_phone(
            session, "+74951230088", source_code="incoming_call", load=()
        )
        open_stage = await session.scalar(select(DealStage).where(DealStage.kind == StageKind.OPEN))
        won_stage = await session.scalar(select(DealStage).where(DealStage.kind == StageKind.WON))
        assert open_stage is not None and won_stage is not None
        deals = [
            Deal(
                client_id=client.id,
                title=f"Deal {n}",
                amount_minor=1050 * n,
                stage_id=(won_stage if n == 2 else open_stage).id,
                stage_kind=StageKind.WON if n == 2 else StageKind.OPEN,
                updated_at=now - timedelta(hours=n % 3),
            )
            for n in range(summary.CARD_ITEMS + 2)
        ]
        tasks = [
            Task(
                title=f"Task {n}",
                client_id=client.id,
                assignee_id=author.id,
                due_at=None if n % 3 == 0 else now + timedelta(days=n % 4),
                done_at=now if n == 4 else None,
                kind="callback" if n == 1 else None,
                params={"number": "+74951230088", "tries": [n]} if n == 1 else None,
            )
            for n in range(summary.CARD_ITEMS + 3)
        ]
        comms = [
            Communication(
                client_id=client.id,
                kind=CommKind.CALL if n % 2 else CommKind.NOTE,
                direction=CommDirection.INBOUND if n % 2 else None,
                user_id=None if n == 3 else author.id,
                occurred_at=now - timedelta(minutes=n // 2),  # ties: the newer id first
                subject=f"Subject {n}" if n % 2 else None,
                body=f"Body {n}",
                details={"seconds": n} if n % 2 else {},
            )
            for n in range(summary.LAST_COMMUNICATIONS + 3)
        ]
        session.add_all([*deals, *tasks, *comms])
        await session.flush()
        for n, comm in enumerate(comms):
            for k in range((n + 1) % 3):
                session.add(
                    CommunicationComment(
                        communication_id=comm.id,
                        user_id=author.id if k else None,
                        body=f"Comment {n}.{k}",
                        created_at=now - timedelta(minutes=k),  # the id orders them
                    )
                )
        await session.commit()
    async with db() as session:
        card = await summary.caller_card(session, client)
        newest, _ = await communications.timeline(
            session, client.id, kind=None, page=1, page_size=summary.LAST_COMMUNICATIONS
        )
    assert card.communications == newest
    assert [c.comments for c in card.communications] == [c.comments for c in newest]
    assert [len(c.comments) for c in card.communications] == [2, 1, 1]
    by_change = sorted(
        (d for d in deals if d.stage_kind == StageKind.OPEN),
        key=lambda d: (d.updated_at, d.id),
        reverse=True,
    )
    assert [(d.id, d.amount, d.stage) for d in card.deals] == [
        (d.id, str(from_minor(d.amount_minor)), open_stage.name)
        for d in by_change[: summary.CARD_ITEMS]
    ]
    by_due = sorted(
        (t for t in tasks if t.done_at is None),
        key=lambda t: (t.due_at is None, t.due_at or now, t.id),
    )
    assert [(t.id, t.due_at, t.kind, t.params) for t in card.tasks] == [
        (t.id, t.due_at, t.kind, t.params) for t in by_due[: summary.CARD_ITEMS]
    ]
    assert card.client is not None and card.client.is_new is False


async def test_a_callers_card_by_number_is_one_statement_and_the_same_card(
    api: RunningApi,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pop's card of a known caller, read by the number at the call's start in one
    round trip: the card in brief (every group, its company, manager, segment and source)
    with its lists, as the card read by its id gives it."""
    admin, manager = actors[Role.ADMIN], actors[Role.MANAGER]
    async with api.client(admin.token) as http:
        segment = (await http.post("/directories/segments", json={"name": "Опт"})).json()
        source = (await http.post("/directories/lead-sources", json={"name": "Выставка"})).json()
        groups = [
            (await http.post("/directories/groups", json={"name": name})).json()["id"]
            for name in ("Постоянные", "Дилеры")
        ]
        company = (
            await http.post("/clients", json={"name": "ООО «Ромашка»", "kind": "company"})
        ).json()
        r = await http.post(
            "/clients",
            json={
                "name": "Сидоров Алексей",
                "phones": [{"number": "8 (916) 555-01-02"}],
                "emails": [{"email": "sidorov@example.ru"}],
                "company_id": company["id"],
                "manager_id": manager.user.id,
                "segment_id": segment["id"],
                "lead_source_id": source["id"],
                "group_ids": groups,
            },
        )
        assert r.status_code == 201, r.text
        client = r.json()
        await http.post(f"/clients/{client['id']}/notes", json={"body": "Ждёт счёт"})
        await http.post("/deals", json={"client_id": client["id"], "title": "Поставка"})
        await http.post("/tasks", json={"title": "Перезвонить", "client_id": client["id"]})
    engine = db.kw["bind"]
    sent: list[str] = []
    # On PostgreSQL the call-event service's own way: straight on a pooled connection.
    async with connect_direct(engine, make_read_sessionmaker(engine)) as conn:
        with statements_sent(engine, monkeypatch, sent.append):
            found = await summary.caller_card_by_phone(conn, "+79165550102")
            nobody = await summary.caller_card_by_phone(conn, "+79165550103")
    async with db() as session:
        by_id = await summary.caller_card(session, await session.get_one(Client, client["id"]))
    assert len(sent) == 2  # one each, the card found or not
    assert nobody is None
    assert found == by_id
    assert found is not None and found.client is not None
    assert sorted(g.id for g in found.client.groups) == sorted(groups)
    assert found.client.company_name == "ООО «Ромашка»"
    assert found.client.segment is not None and found.client.segment.name == "Опт"
    assert found.client.lead_source is not None and found.client.lead_source.name == "Выставка"
    assert [c.body for c in found.communications] == ["Ждёт счёт"]
    assert [d.title for d in found.deals] == ["Поставка"]
    assert [t.title for t in found.tasks] == ["Перезвонить"]
