"""The only publisher of the tasks feature's frames, each to the task's assignee."""

from __future__ import annotations

from crm_api.platform.realtime.hub import Hub
from crm_api.tasks.schemas import TaskPublic
from crm_api.tasks.service import DueReminder


async def task_updated(hub: Hub, task: TaskPublic) -> None:
    await hub.notify(
        "task.updated", {"task": task.model_dump(mode="json")}, users=[task.assignee_id]
    )


def due_frame(reminder: DueReminder) -> dict[str, object]:
    return {
        "task_id": reminder.task_id,
        "title": reminder.title,
        "client_id": reminder.client_id,
        "deal_id": reminder.deal_id,
        "due_at": reminder.due_at.isoformat() if reminder.due_at else None,
        "remind_at": reminder.remind_at.isoformat(),
    }


async def task_due(hub: Hub, reminder: DueReminder) -> None:
    await hub.notify("task.due", due_frame(reminder), users=[reminder.assignee_id])
