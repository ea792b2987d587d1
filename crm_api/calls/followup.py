"""Missed-call follow-up: every unanswered inbound call from a real number reaches a person.

Unanswered is missed (rang out, or the queue timed out), abandoned (while ringing, in the
queue, or before anything rang) and busy. Who calls back: the card's manager; else whom
the routing policy would pick now (on duty, round robin); else the next person on shift;
else a supervisor. A client has at most one open callback task (a partial unique index
holds it): a repeat unanswered call adds to it (count, last time, the reminder set again).
It closes when a call with the client is answered (a callback, or the client calling
again and getting through) or by hand; an Originate merely accepted closes nothing.

The task's text is data (kind `missed_call` and its parameters), so the UI words it in the
user's language."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Table,
    Update,
    bindparam,
    exists,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import Role, User
from crm_api.calls.models import AnyCall, Call
from crm_api.clients.models import Client
from crm_api.clients.timeline.models import Communication
from crm_api.platform.db.base import utcnow
from crm_api.platform.db.direct import Queryable, core_rows
from crm_api.schedules import service as schedules
from crm_api.tasks.models import OPEN_CALLBACK as OPEN_CALLBACK_WHERE
from crm_api.tasks.models import Task, TaskSource
from telephony import events as ev

CALLBACK_KIND = "missed_call"
OPEN_CALLBACK = text(OPEN_CALLBACK_WHERE)  # the predicate of ix_tasks_open_callback
CALLBACK_DUE = timedelta(minutes=15)
UNANSWERED = frozenset(
    {ev.Disposition.MISSED.value, ev.Disposition.ABANDONED.value, ev.Disposition.BUSY.value}
)
SHIFT_HORIZON = timedelta(days=7)  # how far ahead the next shift is looked for
_CALLBACK_ROLES = (Role.MANAGER, Role.OPERATOR, Role.SUPERVISOR)

# The routing policy's pick for a callback of this call now (a user id), or nobody; read
# in the call's own transaction.
Picker = Callable[[AsyncSession, AnyCall], Awaitable[int | None]]


def needs_callback(call: AnyCall) -> bool:
    return call.direction == ev.Direction.INBOUND and call.disposition in UNANSWERED


async def responsible(
    session: AsyncSession,
    call: AnyCall,
    client: Client | None,
    *,
    pick: Picker | None,
    tz: ZoneInfo,
    now: datetime,
) -> int | None:
    """Who owns the follow-up of an unanswered call (and whose journal shows it)."""
    if client is not None and client.manager_id is not None:
        manager = await session.get(User, client.manager_id)
        if manager is not None and manager.is_active:
            return manager.id
    if pick is not None:
        picked = await pick(session, call)
        if picked is not None:
            return picked
    return await next_on_shift(session, now, tz)


async def next_on_shift(session: AsyncSession, now: datetime, tz: ZoneInfo) -> int | None:
    """Whoever is on shift now (first in schedule order), else the next one to start a
    shift within a week, else the first active supervisor: a real person, always."""
    staff = dict(
        (
            await session.execute(
                select(User.id, User.role).where(
                    User.is_active.is_(True), User.role.in_(_CALLBACK_ROLES)
                )
            )
        ).all()
    )
    shifts, absences = await schedules.load(session, now - schedules.DAY, now + SHIFT_HORIZON)
    window = schedules.duties(shifts, absences, now - schedules.DAY, now + SHIFT_HORIZON, tz)
    for duty in window:  # sorted by start: on duty now first, then the next to come
        if duty.ends_at > now and duty.user_id in staff:
            return duty.user_id
    supervisors = sorted(uid for uid, role in staff.items() if role == Role.SUPERVISOR)
    return supervisors[0] if supervisors else None


async def open_callback(
    session: AsyncSession, *, call: AnyCall, client: Client, assignee_id: int, at: datetime
) -> Task:
    """The client's one open callback task, made or added to by this unanswered call."""
    task = await _open_task(session, client.id)
    if task is None:
        fresh = {
            "number": call.caller,
            "name": call.caller_name,
            "count": 1,
            "first_at": at.isoformat(),
            "last_at": at.isoformat(),
            "unanswered": call.unanswered,
        }
        row: dict[str, Any] = {
            "title": client.name or call.caller or "",
            "client_id": client.id,
            "assignee_id": assignee_id,
            "due_at": at + CALLBACK_DUE,
            "remind_at": at + CALLBACK_DUE,
            "source": TaskSource.MISSED_CALL,
            "kind": CALLBACK_KIND,
            "params": fresh,
            "created_at": utcnow(),
        }
        dialect = session.get_bind().dialect.name
        module: Any = postgresql if dialect == "postgresql" else sqlite
        # Two workers ending two calls of one client at once: the index keeps one task,
        # the other call adds to it.
        insert = (
            module.insert(Task)
            .values([row])
            .on_conflict_do_nothing(index_elements=["client_id"], index_where=OPEN_CALLBACK)
        )
        made = await session.execute(insert)
        task = await _open_task(session, client.id)
        assert task is not None
        if made.rowcount:  # type: ignore[attr-defined]
            return task
    params: dict[str, Any] = dict(task.params or {})
    params["count"] = int(params.get("count") or 1) + 1
    params["last_at"] = at.isoformat()
    params["unanswered"] = call.unanswered
    params["name"] = params.get("name") or call.caller_name
    task.params = params
    # Reopened reminder: it rings again for the new call, due from its time.
    task.due_at = task.remind_at = at + CALLBACK_DUE
    task.reminded_at = None
    return task


async def callback_assignee(session: AsyncSession, task_id: int) -> int | None:
    """Who owes the callback of task `task_id` now."""
    return await session.scalar(select(Task.assignee_id).where(Task.id == task_id))


async def _open_task(session: AsyncSession, client_id: int) -> Task | None:
    return await session.scalar(
        select(Task)
        .where(Task.client_id == client_id, Task.kind == CALLBACK_KIND, Task.done_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


# Built once: every unanswered call asks the first, every answered one runs the second
# (an UPDATE's parameters must not be named after its columns).
_ANSWERED_LATER = (
    select(Call.id)
    .where(
        Call.client_id == bindparam("client_id"),
        Call.id != bindparam("call_id"),
        Call.disposition == ev.Disposition.ANSWERED.value,
        Call.started_at > bindparam("started_at"),
    )
    .limit(1)
)
_TASKS = cast(Table, Task.__table__)


def closing_callbacks(client: ColumnElement[int], closed_at: ColumnElement[datetime]) -> Update:
    """The UPDATE that closes the client's open callback (none: it changes nothing)."""
    return (
        update(_TASKS)
        .where(
            _TASKS.c.client_id == client,
            _TASKS.c.kind == CALLBACK_KIND,
            _TASKS.c.done_at.is_(None),
        )
        .values(done_at=closed_at)
    )


_CLOSE_CALLBACKS = closing_callbacks(bindparam("client"), bindparam("closed_at")).returning(
    _TASKS.c.id
)


# Asked by the INSERT of an answered call's communication (`communications.record`): a
# client rarely has a callback to close, and then the UPDATE closing it is not sent. Read
# one statement before that UPDATE would run, in the same transaction: a callback opened
# meanwhile by another worker is the race the UPDATE had already (that worker's
# `reached_since` sees this call answered only once it commits).
HAS_OPEN_CALLBACK = (
    exists()
    .where(
        Task.client_id == literal_column(f"{Communication.__tablename__}.client_id"),
        OPEN_CALLBACK,
    )
    .label("has_open_callback")
)


async def reached_since(session: AsyncSession, client_id: int, call: AnyCall) -> bool:
    """A later call with the client was answered already (events of calls seconds apart
    may be written out of order): this unanswered one owes no callback."""
    params = {"client_id": client_id, "call_id": call.id, "started_at": call.started_at}
    return await session.scalar(_ANSWERED_LATER, params) is not None


async def close_callbacks(db: Queryable, client_id: int, at: datetime) -> list[int]:
    """A call with the client was answered: its open callback task is done."""
    closed = await core_rows(db, _CLOSE_CALLBACKS, {"client": client_id, "closed_at": at})
    return [task_id for (task_id,) in closed]
