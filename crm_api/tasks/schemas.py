"""Wire shapes of tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import AwareDatetime, Field

from crm_api.platform.schemas import ApiModel, Id, Title
from crm_api.tasks.models import TaskSource
from crm_api.tasks.types import Handoff, NewTask, TaskChanges


class TaskCreate(ApiModel):
    title: Title
    notes: Annotated[str | None, Field(max_length=10_000)] = None
    client_id: Id | None = None
    deal_id: Id | None = None
    assignee_id: Id | None = None  # yourself when not given
    due_at: AwareDatetime | None = None
    remind_at: AwareDatetime | None = None

    def to_new(self) -> NewTask:
        return NewTask(**self.model_dump())


class TaskUpdate(ApiModel):
    title: Title | None = None
    notes: Annotated[str | None, Field(max_length=10_000)] = None
    due_at: AwareDatetime | None = None
    remind_at: AwareDatetime | None = None

    def changes(self) -> TaskChanges:
        return cast(TaskChanges, self.model_dump(exclude_unset=True))


class TaskSnooze(ApiModel):
    preset: Literal["10m", "1h", "tomorrow"]


class TaskHandoff(ApiModel):
    assignee_id: Id
    title: Title | None = None  # the current task's title when not given
    notes: Annotated[str | None, Field(max_length=10_000)] = None
    due_at: AwareDatetime | None = None
    remind_at: AwareDatetime | None = None

    def to_handoff(self) -> Handoff:
        return Handoff(**self.model_dump())


class TaskPublic(ApiModel):
    id: int
    title: str
    notes: str | None
    client_id: int | None
    deal_id: int | None
    assignee_id: int
    created_by_id: int | None
    due_at: datetime | None
    remind_at: datetime | None
    reminded_at: datetime | None
    done_at: datetime | None
    source: TaskSource
    # A task the system made: what it is (`missed_call`) and its parameters, for the UI to
    # word in the user's language: missed_call {number, name, count, first_at, last_at,
    # unanswered}; stale_deal {deal, days}. Its `title` is then only the client's name or
    # number, or the deal's title.
    kind: str | None = None
    params: dict[str, Any] | None = None
    previous_task_id: int | None
    created_at: datetime
