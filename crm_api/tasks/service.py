"""Tasks and their reminders, and the rules that create tasks by themselves.

A reminder is claimed in the database by one UPDATE that only matches while
`reminded_at` is empty, so with several API workers polling the same table each
reminder is sent by exactly one of them. Automatic tasks carry a `source_key` naming
their cause (the missed call, the stale deal and its idle date): one task per cause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import Role, User
from crm_api.clients import service as clients_domain
from crm_api.clients.timeline.models import Communication
from crm_api.platform.db.base import utcnow
from crm_api.platform.db.direct import Queryable, core_rows
from crm_api.platform.errors import Conflict, InvalidInput, NotFound
from crm_api.sales import service as deals_domain
from crm_api.sales.models import Deal, StageKind
from crm_api.tasks.models import STALE_DEAL_KIND, Task, TaskSource
from crm_api.tasks.types import Handoff, NewTask, TaskChanges

CLAIM_BATCH = 200


@dataclass(frozen=True, slots=True)
class DueReminder:
    task_id: int
    assignee_id: int
    title: str
    client_id: int | None
    deal_id: int | None
    due_at: datetime | None
    remind_at: datetime
    kind: str | None = None  # a system task's kind and parameters (the UI words them)
    params: dict[str, Any] | None = None


def snooze_until(preset: str, now: datetime, tz: ZoneInfo, morning: time) -> datetime:
    """10 minutes, an hour, or tomorrow morning on the company's calendar."""
    if preset == "10m":
        return now + timedelta(minutes=10)
    if preset == "1h":
        return now + timedelta(hours=1)
    if preset == "tomorrow":
        tomorrow: date = now.astimezone(tz).date() + timedelta(days=1)
        return datetime.combine(tomorrow, morning, tzinfo=tz)
    raise InvalidInput("preset", f"unknown snooze {preset!r}")


def _future(field: str, value: datetime | None, now: datetime) -> None:
    if value is not None and value <= now:
        raise InvalidInput(field, "must be in the future")


async def _assignee(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise InvalidInput("assignee_id", f"unknown user {user_id}")
    return user


async def _links(
    session: AsyncSession, user: User, client_id: int | None, deal_id: int | None
) -> tuple[int | None, int | None]:
    """The client and deal a task hangs on, checked against what the user may see; a
    deal alone brings its client."""
    if deal_id is not None:
        try:
            deal = await deals_domain.get_for(session, user, deal_id)
        except NotFound as exc:
            raise InvalidInput("deal_id", f"unknown deal {deal_id}") from exc
        if client_id is not None and client_id != deal.client_id:
            raise InvalidInput("client_id", "the deal belongs to another client")
        client_id = deal.client_id
    elif client_id is not None:
        try:
            await clients_domain.get_for(session, user, client_id)
        except NotFound as exc:
            raise InvalidInput("client_id", f"unknown client {client_id}") from exc
    return client_id, deal_id


async def create_task(
    session: AsyncSession,
    user: User,
    data: NewTask,
    *,
    now: datetime | None = None,
    source: TaskSource = TaskSource.MANUAL,
    previous_task_id: int | None = None,
) -> Task:
    now = now or utcnow()
    _future("remind_at", data.remind_at, now)
    assignee_id = data.assignee_id if data.assignee_id is not None else user.id
    await _assignee(session, assignee_id)
    client_id, deal_id = await _links(session, user, data.client_id, data.deal_id)
    task = Task(
        title=data.title,
        notes=data.notes,
        client_id=client_id,
        deal_id=deal_id,
        assignee_id=assignee_id,
        created_by_id=user.id,
        due_at=data.due_at,
        remind_at=data.remind_at,
        source=source,
        previous_task_id=previous_task_id,
        created_at=now,
    )
    session.add(task)
    await session.flush()
    return task


def task_scope(user: User) -> Any:
    """Staff see every task; others their own and the ones they handed out."""
    if user.role in (Role.SUPERVISOR, Role.ADMIN):
        return Task.id.is_not(None)
    return or_(Task.assignee_id == user.id, Task.created_by_id == user.id)


async def get_for(session: AsyncSession, user: User, task_id: int) -> Task:
    task = await session.scalar(select(Task).where(Task.id == task_id, task_scope(user)))
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


async def list_tasks(
    session: AsyncSession,
    user: User,
    *,
    assignee_id: int | None,
    client_id: int | None,
    deal_id: int | None,
    open_only: bool,
    limit: int,
    offset: int,
) -> tuple[list[Task], int]:
    q = select(Task).where(task_scope(user))
    if assignee_id is not None:
        q = q.where(Task.assignee_id == assignee_id)
    if client_id is not None:
        q = q.where(Task.client_id == client_id)
    if deal_id is not None:
        q = q.where(Task.deal_id == deal_id)
    if open_only:
        q = q.where(Task.done_at.is_(None))
    total = await session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = await session.scalars(
        q.order_by(Task.done_at.is_not(None), Task.due_at.is_(None), Task.due_at, Task.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all()), total


async def update_task(
    session: AsyncSession, user: User, task_id: int, sent: TaskChanges, now: datetime
) -> Task:
    task = await get_for(session, user, task_id)
    changes: dict[str, Any] = dict(sent)
    if "remind_at" in changes:
        _future("remind_at", changes["remind_at"], now)
        task.reminded_at = None  # a new reminder time is a new reminder
    if changes.get("title") is None:
        changes.pop("title", None)
    for key, value in changes.items():
        setattr(task, key, value)
    await session.flush()
    return task


async def complete(session: AsyncSession, user: User, task_id: int, now: datetime) -> Task:
    task = await get_for(session, user, task_id)
    if task.done_at is not None:
        raise Conflict("the task is already done").with_code("task_done")
    task.done_at = now
    await session.flush()
    return task


async def snooze(
    session: AsyncSession,
    user: User,
    task_id: int,
    preset: str,
    *,
    now: datetime,
    tz: ZoneInfo,
    morning: time,
) -> Task:
    task = await get_for(session, user, task_id)
    if task.done_at is not None:
        raise Conflict("the task is already done").with_code("task_done")
    task.remind_at = snooze_until(preset, now, tz, morning)
    task.reminded_at = None
    # Put off past its due time, the task is due then: not overdue while it waits.
    if task.due_at is not None and task.due_at < task.remind_at:
        task.due_at = task.remind_at
    await session.flush()
    return task


async def handoff(
    session: AsyncSession, user: User, task_id: int, data: Handoff, now: datetime
) -> tuple[Task, Task]:
    """Closes this task and opens the next one for a colleague, on the same client/deal."""
    task = await get_for(session, user, task_id)
    if task.done_at is not None:
        raise Conflict("the task is already done").with_code("task_done")
    nxt = await create_task(
        session,
        user,
        NewTask(
            title=data.title or task.title,
            notes=data.notes,
            client_id=task.client_id,
            deal_id=task.deal_id,
            assignee_id=data.assignee_id,
            due_at=data.due_at,
            remind_at=data.remind_at,
        ),
        now=now,
        source=TaskSource.HANDOFF,
        previous_task_id=task.id,
    )
    task.done_at = now
    await session.flush()
    return task, nxt


async def tasks_of_deal(session: AsyncSession, deal_id: int) -> list[Task]:
    rows = await session.scalars(
        select(Task)
        .where(Task.deal_id == deal_id)
        .order_by(Task.done_at.is_not(None), Task.due_at.is_(None), Task.due_at, Task.id)
        .limit(100)
    )
    return list(rows.all())


# --- reminders -------------------------------------------------------------------------


# Built once (the poll runs every second in every worker): the reminders due at `now`,
# oldest first, marked sent and answered in one statement.
_CLAIM_DUE = (
    update(Task)
    .where(
        Task.id.in_(
            select(Task.id)
            .where(
                Task.reminded_at.is_(None),
                Task.remind_at <= bindparam("now"),
                Task.done_at.is_(None),
            )
            .order_by(Task.remind_at)
            .limit(CLAIM_BATCH)
            .scalar_subquery()
        ),
        Task.reminded_at.is_(None),
    )
    .values(reminded_at=bindparam("now"))
    .returning(
        Task.id,
        Task.assignee_id,
        Task.title,
        Task.client_id,
        Task.deal_id,
        Task.due_at,
        Task.remind_at,
        Task.kind,
        Task.params,
    )
)


async def claim_due(db: Queryable, now: datetime) -> list[DueReminder]:
    """Marks due reminders as sent and returns them; a reminder another worker claimed
    first no longer matches `reminded_at IS NULL` and is skipped."""
    rows = await core_rows(db, _CLAIM_DUE, {"now": now})
    return [
        DueReminder(task_id, assignee, title, client, deal, due_at, remind_at or now, kind, params)
        for task_id, assignee, title, client, deal, due_at, remind_at, kind, params in rows
    ]


# --- rules -----------------------------------------------------------------------------


def _insert_ignoring_duplicates(session: AsyncSession, rows: list[dict[str, Any]]) -> Any:
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(Task).values(rows).on_conflict_do_nothing(index_elements=["source_key"])


async def add_automatic(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Inserts rule-made tasks; one whose `source_key` exists already is skipped."""
    if not rows:
        return 0
    result = await session.execute(_insert_ignoring_duplicates(session, rows))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def stale_deal_tasks(session: AsyncSession, now: datetime, days: int) -> int:
    """A callback task for the manager of every open deal idle for `days`: no change to
    the deal and no communication with its client since then."""
    horizon = now - timedelta(days=days)
    recent_comm = (
        select(Communication.id)
        .where(Communication.client_id == Deal.client_id, Communication.occurred_at > horizon)
        .exists()
    )
    stale = await session.execute(
        select(Deal.id, Deal.title, Deal.client_id, Deal.manager_id, Deal.last_activity_at)
        .where(
            and_(
                Deal.stage_kind == StageKind.OPEN,
                Deal.last_activity_at <= horizon,
                Deal.manager_id.is_not(None),
                ~recent_comm,
            )
        )
        .limit(1000)
    )
    rows = [
        {
            "title": title,
            "kind": STALE_DEAL_KIND,  # the UI words it: "Deal idle for 7 days: …"
            "params": {"deal": title, "days": days},
            "client_id": client_id,
            "deal_id": deal_id,
            "assignee_id": manager_id,
            "due_at": now,
            "remind_at": now,
            "source": TaskSource.STALE_DEAL,
            # One task per idle stretch: new activity moves last_activity_at on.
            "source_key": f"stale_deal:{deal_id}:{last.date().isoformat()}",
            "created_at": now,
        }
        for deal_id, title, client_id, manager_id, last in stale
    ]
    return await add_automatic(session, rows)
