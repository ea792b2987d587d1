from __future__ import annotations

from datetime import time
from typing import Annotated

from fastapi import APIRouter, Query

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import Services, ServicesDep, SessionDep, require
from crm_api.platform.schemas import Id, Page
from crm_api.tasks import notifier
from crm_api.tasks import service as tasks_domain
from crm_api.tasks.models import Task
from crm_api.tasks.schemas import TaskCreate, TaskHandoff, TaskPublic, TaskSnooze, TaskUpdate

router = APIRouter(prefix="/tasks", tags=["tasks"])
Tasker = Annotated[User, require(Permission.TASKS)]


async def publish_task(services: Services, task: Task) -> TaskPublic:
    public = TaskPublic.model_validate(task)
    await notifier.task_updated(services.hub, public)
    return public


@router.get("", operation_id="list_tasks")
async def list_tasks(
    session: SessionDep,
    user: Tasker,
    assignee_id: Id | None = None,
    client_id: Id | None = None,
    deal_id: Id | None = None,
    open_only: bool = True,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[TaskPublic]:
    rows, total = await tasks_domain.list_tasks(
        session,
        user,
        assignee_id=assignee_id,
        client_id=client_id,
        deal_id=deal_id,
        open_only=open_only,
        limit=page_size,
        offset=(page - 1) * page_size,
    )
    return Page(
        items=[TaskPublic.model_validate(t) for t in rows],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.post("", status_code=201, operation_id="create_task")
async def create_task(
    body: TaskCreate, session: SessionDep, services: ServicesDep, user: Tasker
) -> TaskPublic:
    task = await tasks_domain.create_task(session, user, body.to_new())
    await session.commit()
    return await publish_task(services, task)


@router.get("/{task_id}", operation_id="get_task")
async def get_task(task_id: Id, session: SessionDep, user: Tasker) -> TaskPublic:
    return TaskPublic.model_validate(await tasks_domain.get_for(session, user, task_id))


@router.patch("/{task_id}", operation_id="update_task")
async def update_task(
    task_id: Id, body: TaskUpdate, session: SessionDep, services: ServicesDep, user: Tasker
) -> TaskPublic:
    task = await tasks_domain.update_task(session, user, task_id, body.changes(), utcnow())
    await session.commit()
    return await publish_task(services, task)


@router.post("/{task_id}/done", operation_id="complete_task")
async def complete_task(
    task_id: Id, session: SessionDep, services: ServicesDep, user: Tasker
) -> TaskPublic:
    task = await tasks_domain.complete(session, user, task_id, utcnow())
    await session.commit()
    return await publish_task(services, task)


@router.post("/{task_id}/snooze", operation_id="snooze_task")
async def snooze_task(
    task_id: Id, body: TaskSnooze, session: SessionDep, services: ServicesDep, user: Tasker
) -> TaskPublic:
    settings = services.settings
    task = await tasks_domain.snooze(
        session,
        user,
        task_id,
        body.preset,
        now=utcnow(),
        tz=settings.tz,
        morning=time.fromisoformat(settings.morning),
    )
    await session.commit()
    return await publish_task(services, task)


@router.post("/{task_id}/handoff", status_code=201, operation_id="handoff_task")
async def handoff_task(
    task_id: Id, body: TaskHandoff, session: SessionDep, services: ServicesDep, user: Tasker
) -> TaskPublic:
    """Closes this task and answers the next one, created for the colleague."""
    done, nxt = await tasks_domain.handoff(session, user, task_id, body.to_handoff(), utcnow())
    await session.commit()
    await publish_task(services, done)
    return await publish_task(services, nxt)
