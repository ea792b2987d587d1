"""Tasks, reminders over /ws (once, with two API instances on one database, and after a
restart), snooze, hand-off, and the rules that make tasks: missed calls, stale deals."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.call_events import call_sink, handled
from support.factories import Actor, make_user, on_shift_all_week
from support.server import RunningApi, running_api
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.pipeline import start_call_events
from crm_api.clients.timeline.models import CommDirection, CommKind, Communication
from crm_api.platform.runtime import running_features
from crm_api.platform.settings import Settings
from crm_api.sales.models import Deal
from crm_api.tasks.models import Task, TaskSource
from crm_api.tasks.reminders import run_stale_rule, send_due, start_reminders
from telephony import events as ev

MSK = ZoneInfo("Europe/Moscow")


def iso(at: datetime) -> str:
    return at.isoformat()


async def _client(api: RunningApi, actor: Actor, name: str = "Клиент") -> dict[str, Any]:
    async with api.client(actor.token) as http:
        r = await http.post("/clients", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


async def test_task_crud_snooze_and_handoff(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager, operator = actors[Role.MANAGER], actors[Role.OPERATOR]
    client = await _client(api, manager)
    now = datetime.now(UTC)
    async with api.client(manager.token) as http:
        # A reminder in the past, an unknown client, a reminder time without zone: refused.
        for body in (
            {"title": "t", "remind_at": iso(now - timedelta(minutes=1))},
            {"title": "t", "client_id": 999999},
            {"title": "t", "deal_id": 999999},
            {"title": "t", "assignee_id": 999999},
            {"title": "t", "remind_at": "2030-01-01T10:00:00"},
        ):
            r = await http.post("/tasks", json=body)
            assert r.status_code == 422, (body, r.text)
        r = await http.post(
            "/tasks",
            json={
                "title": "Позвонить",
                "client_id": client["id"],
                "due_at": iso(now + timedelta(hours=2)),
                "remind_at": iso(now + timedelta(hours=1)),
            },
        )
        assert r.status_code == 201, r.text
        task = r.json()
        assert task["assignee_id"] == manager.user.id

        r = await http.post(f"/tasks/{task['id']}/snooze", json={"preset": "10m"})
        got = datetime.fromisoformat(r.json()["remind_at"])
        assert timedelta(minutes=9) < got - now < timedelta(minutes=11)
        assert r.json()["due_at"] == task["due_at"]  # still due later than that
        r = await http.post(f"/tasks/{task['id']}/snooze", json={"preset": "tomorrow"})
        local = datetime.fromisoformat(r.json()["remind_at"]).astimezone(MSK)
        assert (local.hour, local.minute) == (9, 0)
        assert local.date() == now.astimezone(MSK).date() + timedelta(days=1)
        # Put off past its due time: due when the reminder comes, not overdue meanwhile.
        assert r.json()["due_at"] == r.json()["remind_at"]
        r = await http.post(f"/tasks/{task['id']}/snooze", json={"preset": "someday"})
        assert r.status_code == 422

        r = await http.post(
            f"/tasks/{task['id']}/handoff",
            json={"assignee_id": operator.user.id, "title": "Отправить КП"},
        )
        assert r.status_code == 201, r.text
        nxt = r.json()
        assert nxt["assignee_id"] == operator.user.id
        assert nxt["previous_task_id"] == task["id"] and nxt["client_id"] == client["id"]
        assert nxt["source"] == "handoff"
        r = await http.get(f"/tasks/{task['id']}")
        assert r.json()["done_at"] is not None
        r = await http.post(f"/tasks/{task['id']}/done")
        assert r.status_code == 409
    async with api.client(operator.token) as http:
        r = await http.get("/tasks")
        assert [t["id"] for t in r.json()["items"]] == [nxt["id"]]
        r = await http.post(f"/tasks/{nxt['id']}/done")
        assert r.status_code == 200 and r.json()["done_at"]
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == 2


async def _due_frames(sockets: list[Socket], expected: int) -> list[list[dict[str, Any]]]:
    """`task.due` frames per socket, until `expected` arrived in all (or a minute went by)."""
    got: list[list[dict[str, Any]]] = [[] for _ in sockets]
    enough = asyncio.Event()

    async def read(k: int, sock: Socket) -> None:
        with contextlib.suppress(TimeoutError):
            while True:
                got[k].append(await sock.next_of("task.due", within=60))
                if sum(len(g) for g in got) >= expected:
                    enough.set()

    readers = [asyncio.create_task(read(k, s)) for k, s in enumerate(sockets)]
    async with asyncio.timeout(60):
        await enough.wait()
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return got


async def _due_before_marker(sock: Socket, api: RunningApi, user_id: int) -> list[dict[str, Any]]:
    """The `task.due` frames that came after those read, before a marker published now."""
    frames = await sock.settle(api.app.state.services.hub, user_id)
    return [f for f in frames if f["type"] == "task.due"]


async def test_reminders_fire_once_with_two_instances_and_after_a_restart(
    settings: Settings, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager = actors[Role.MANAGER]
    fast = settings.model_copy(update={"reminder_poll_seconds": 0.1})
    now = datetime.now(UTC)
    async with db() as session:  # fell due while no worker ran
        session.add(
            Task(title="overdue", assignee_id=manager.user.id, remind_at=now - timedelta(hours=1))
        )
        await session.commit()
    # One worker takes the tasks and stops (it sends the overdue one on its first poll)...
    later = now + timedelta(hours=1)
    async with running_api(fast, features=(start_reminders,)) as first:
        http = first.client(manager.token)
        for i in range(5):
            r = await http.post("/tasks", json={"title": f"t{i}", "remind_at": iso(later)})
            assert r.status_code == 201, r.text
        await http.aclose()
    async with db() as session:
        overdue = await session.scalar(select(Task).where(Task.title == "overdue"))
        assert overdue is not None and overdue.reminded_at is not None
    # ...two others, on the same database (and Redis), send each reminder once when due.
    async with (
        running_api(fast) as a,
        running_api(fast) as b,
        open_socket(a.ws_url, manager.token) as wa,
        open_socket(b.ws_url, manager.token) as wb,
    ):
        sa, sb = Socket(wa), Socket(wb)
        await sa.next_of("hello")
        await sb.next_of("hello")
        async with (
            running_features(a.app.state.services, (start_reminders,)),
            running_features(b.app.state.services, (start_reminders,)),
        ):
            due = datetime.now(UTC) + timedelta(seconds=0.5)
            async with db() as session:  # the tasks fall due now, with both workers polling
                await session.execute(
                    update(Task).where(Task.title.like("t%")).values(remind_at=due)
                )
                await session.commit()
            expected = 10 if settings.redis_url else 5
            got_a, got_b = await _due_frames([sa, sb], expected)
        # Both workers stopped polling, each after its last poll sent its frames: a
        # duplicate of either came before these markers.
        got_a += await _due_before_marker(sa, a, manager.user.id)
        got_b += await _due_before_marker(sb, b, manager.user.id)
    titles_a = sorted(f["data"]["title"] for f in got_a)
    titles_b = sorted(f["data"]["title"] for f in got_b)
    titles = [f"t{i}" for i in range(5)]
    if settings.redis_url:  # one bus: each socket sees each reminder, once
        assert titles_a == titles and titles_b == titles
    else:  # two embedded buses: the sockets of the worker that claimed it get it
        assert sorted(titles_a + titles_b) == titles
    for f in got_a + got_b:  # not early
        assert datetime.fromisoformat(f["ts"]) >= due
    async with db() as session:
        left = await session.scalar(select(func.count()).where(Task.reminded_at.is_(None)))
    assert left == 0


async def test_a_missed_queue_call_makes_one_callback_task(
    settings: Settings, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    async with db() as session:
        m102 = await make_user(session, Role.MANAGER, extension="102")
        # On duty: the routing policy picks who calls back (the card has no manager).
        await on_shift_all_week(session, actors[Role.MANAGER].user, m102.user)
        await session.commit()
    t0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    events: list[ev.CallEvent] = [
        ev.CallStarted(
            call_id="mq1",
            at=t0,
            direction=ev.Direction.INBOUND,
            caller="84951112299",
            callee="74951234569",
            did="74951234569",
        ),
        *[
            ev.CallRinging(call_id="mq1", at=t0, agent=a, caller="+74951112299")
            for a in ("101", "102")
        ],
        ev.CallEnded(
            call_id="mq1",
            at=t0 + timedelta(seconds=20),
            direction=ev.Direction.INBOUND,
            disposition=ev.Disposition.MISSED,
            cause=19,
            caller="+74951112299",
            ring_s=20.0,
            talk_s=0.0,
        ),
    ]
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with running_api(settings, features=(start_call_events,)) as api:
        sink = call_sink(api.app.state.services)
        for event in events + events:  # replayed after a reconnect
            await sink(event)
        async with asyncio.timeout(30):
            while True:
                async with db() as session:
                    tasks = (await session.scalars(select(Task))).all()
                if tasks:
                    break
                await asyncio.sleep(0.05)
        await wait_for(lambda: handled(api.app.state.services))  # the replay too
    async with db() as session:
        tasks = (await session.scalars(select(Task))).all()
    assert len(tasks) == 1
    task = tasks[0]
    assert task.source is TaskSource.MISSED_CALL and task.client_id is not None
    assert task.assignee_id in (actors[Role.MANAGER].user.id, m102.user.id)
    assert task.due_at == t0 + timedelta(seconds=20, minutes=15)


async def test_stale_deals_get_one_callback_task_each(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager = actors[Role.MANAGER]
    idle_client = await _client(api, manager, "Молчун")
    busy_client = await _client(api, manager, "Болтун")
    async with api.client(manager.token) as http:
        idle = (
            await http.post("/deals", json={"client_id": idle_client["id"], "title": "A"})
        ).json()
        busy = (
            await http.post("/deals", json={"client_id": busy_client["id"], "title": "B"})
        ).json()
        fresh_client = await _client(api, manager, "Новый")
        await http.post("/deals", json={"client_id": fresh_client["id"], "title": "C"})
    old = datetime.now(UTC) - timedelta(days=10)
    async with db() as session:
        await session.execute(
            update(Deal).where(Deal.id.in_([idle["id"], busy["id"]])).values(last_activity_at=old)
        )
        session.add(
            Communication(
                client_id=busy_client["id"],
                kind=CommKind.CALL,
                direction=CommDirection.INBOUND,
                occurred_at=datetime.now(UTC) - timedelta(days=1),
            )
        )
        await session.commit()
    services = api.app.state.services
    assert await run_stale_rule(services) == 1
    assert await run_stale_rule(services) == 0  # same idle stretch: no second task
    # Its reminder goes off at once, with what the UI words: the kind and its parameters.
    async with open_socket(api.ws_url, manager.token) as ws:
        conn = Socket(ws)
        await conn.next_of("hello")
        assert await send_due(services) == 1
        due = (await conn.next_of("task.due"))["data"]
    assert (due["title"], due["kind"], due["params"]) == (
        "A",
        "stale_deal",
        {"deal": "A", "days": 7},
    )
    async with db() as session:
        tasks = (await session.scalars(select(Task))).all()
    assert [(t.deal_id, t.assignee_id, t.source) for t in tasks] == [
        (idle["id"], manager.user.id, TaskSource.STALE_DEAL)
    ]
    # No English prose stored: the UI words the kind and its parameters.
    assert (tasks[0].title, tasks[0].kind, tasks[0].params) == (
        "A",
        "stale_deal",
        {"deal": "A", "days": 7},
    )


async def test_closing_a_deal_closes_its_idle_task(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager = actors[Role.MANAGER]
    client = await _client(api, manager, "Молчун")
    async with api.client(manager.token) as http:
        won, lost, open_ = [
            (await http.post("/deals", json={"client_id": client["id"], "title": t})).json()
            for t in ("A", "B", "C")
        ]
        r = await http.post("/tasks", json={"title": "Счёт", "deal_id": won["id"]})
        assert r.status_code == 201, r.text
        manual = r.json()
    async with db() as session:
        await session.execute(
            update(Deal).values(last_activity_at=datetime.now(UTC) - timedelta(days=10))
        )
        await session.commit()
    assert await run_stale_rule(api.app.state.services) == 3

    async with open_socket(api.ws_url, manager.token) as ws, api.client(manager.token) as http:
        conn = Socket(ws)
        await conn.next_of("hello")
        # A refused close changes nothing: the deal and its idle task stay open.
        r = await http.post(f"/deals/{lost['id']}/close", json={"outcome": "lost"})
        assert r.status_code == 422
        r = await http.post(f"/deals/{won['id']}/close", json={"outcome": "won"})
        assert r.status_code == 200, r.text
        closed_at = r.json()["closed_at"]
        frame = await conn.next_of("task.updated")
        assert frame["data"]["task"]["deal_id"] == won["id"]
        assert frame["data"]["task"]["kind"] == "stale_deal"
        assert frame["data"]["task"]["done_at"] == closed_at
        r = await http.post(
            f"/deals/{lost['id']}/close", json={"outcome": "lost", "reason": "дорого"}
        )
        assert r.status_code == 200, r.text
        frame = await conn.next_of("task.updated")
        assert frame["data"]["task"]["deal_id"] == lost["id"]
    async with db() as session:
        tasks = (await session.scalars(select(Task).order_by(Task.id))).all()
    done = {(t.deal_id, t.kind): t.done_at is not None for t in tasks}
    assert done == {
        (won["id"], None): False,  # the manager's own task on the deal stays theirs to close
        (won["id"], "stale_deal"): True,
        (lost["id"], "stale_deal"): True,
        (open_["id"], "stale_deal"): False,
    }
    assert manual["id"] in {t.id for t in tasks}
