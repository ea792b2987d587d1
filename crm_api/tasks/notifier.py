"""The only publisher of the tasks feature's frames, each to the task's assignee."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from crm_api.platform.realtime.frames import FrameModel
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.schemas import ApiModel
from crm_api.tasks.schemas import TaskPublic
from crm_api.tasks.service import DueReminder


class TaskUpdated(ApiModel):
    task: TaskPublic


class TaskDue(ApiModel):
    """A reminder went off."""

    task_id: int
    title: str
    client_id: int | None
    deal_id: int | None
    due_at: datetime | None
    remind_at: datetime
    # A system task: its kind and parameters, as on TaskPublic (the reminder words them in
    # the user's language; `title` alone is only the client's name or the deal's title).
    kind: str | None = None
    params: dict[str, Any] | None = None


class TaskUpdatedFrame(FrameModel):
    type: Literal["task.updated"] = "task.updated"
    data: TaskUpdated


class TaskDueFrame(FrameModel):
    type: Literal["task.due"] = "task.due"
    data: TaskDue


async def task_updated(hub: Hub, task: TaskPublic) -> None:
    data = TaskUpdated(task=task).model_dump(mode="json")
    await hub.notify(TaskUpdatedFrame.name(), data, users=[task.assignee_id])


async def task_due(hub: Hub, reminder: DueReminder) -> None:
    due = TaskDue(
        task_id=reminder.task_id,
        title=reminder.title,
        client_id=reminder.client_id,
        deal_id=reminder.deal_id,
        due_at=reminder.due_at,
        remind_at=reminder.remind_at,
        kind=reminder.kind,
        params=reminder.params,
    )
    await hub.notify(TaskDueFrame.name(), due.model_dump(mode="json"), users=[reminder.assignee_id])
