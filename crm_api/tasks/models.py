"""Storage of tasks: who does what by when, their reminders, and what made an automatic one."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.platform.db.base import Base, JsonType, str_enum, utcnow


class TaskSource(enum.StrEnum):
    MANUAL = "manual"
    MISSED_CALL = "missed_call"
    STALE_DEAL = "stale_deal"
    HANDOFF = "handoff"


# A deal idle too long: its manager's "deal idle" task, done when the deal closes.
STALE_DEAL_KIND = "stale_deal"

# The one open callback task per client (ix_tasks_open_callback).
OPEN_CALLBACK = "kind = 'missed_call' AND done_at IS NULL"


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    notes: Mapped[str | None] = mapped_column(Text)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), index=True
    )
    assignee_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    due_at: Mapped[datetime | None]
    remind_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    source: Mapped[TaskSource] = mapped_column(str_enum(TaskSource), default=TaskSource.MANUAL)
    # A task the system made says what it is as a kind and its parameters (the UI words
    # them in the user's language): missed_call {number, name, count, first_at, last_at,
    # unanswered}; stale_deal {deal, days}.
    kind: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # What made an automatic task ("missed_call:42"): one task per cause, whoever asks.
    source_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    previous_task_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_tasks_assignee_open", "assignee_id", "done_at", "due_at"),
        Index("ix_tasks_reminder_due", "reminded_at", "remind_at"),
        # One open callback task per client: repeat missed calls add to it.
        Index(
            "ix_tasks_open_callback",
            "client_id",
            unique=True,
            sqlite_where=text(OPEN_CALLBACK),
            postgresql_where=text(OPEN_CALLBACK),
        ),
    )
