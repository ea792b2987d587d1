"""What the task use cases take: plain values the routers parse from the wire (the HTTP
models in schemas.py stay on the HTTP side). Changes carry only the fields sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict


@dataclass(frozen=True, slots=True)
class NewTask:
    title: str
    notes: str | None = None
    client_id: int | None = None
    deal_id: int | None = None
    assignee_id: int | None = None  # the author when not given
    due_at: datetime | None = None
    remind_at: datetime | None = None


class TaskChanges(TypedDict, total=False):
    title: str | None
    notes: str | None
    due_at: datetime | None
    remind_at: datetime | None


@dataclass(frozen=True, slots=True)
class Handoff:
    assignee_id: int
    title: str | None = None  # the current task's title when not given
    notes: str | None = None
    due_at: datetime | None = None
    remind_at: datetime | None = None
