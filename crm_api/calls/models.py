from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.platform.db.base import Base, JsonType, utcnow


class Call(Base):
    """A client call as the call-event service follows it, one row per PBX and its call id
    (Asterisk's Linkedid), whatever legs, queue members and transfers it went through. Two
    PBXs (or one after a restart of its counter) may give the same id to different calls."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    pbx: Mapped[str] = mapped_column(String(64))  # CALLCARD_PBX_NAME of the PBX that carried it
    pbx_call_id: Mapped[str | None] = mapped_column(String(64))
    crm_call_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # click-to-call
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # originating|ringing|answered|ended|failed
    caller: Mapped[str | None] = mapped_column(String(40))
    callee: Mapped[str | None] = mapped_column(String(40))
    did: Mapped[str | None] = mapped_column(String(40))
    ringing: Mapped[list[str]] = mapped_column(JsonType, default=list)  # extensions rung
    agents: Mapped[list[str]] = mapped_column(JsonType, default=list)  # extensions that talked
    answered_by: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    disposition: Mapped[str | None] = mapped_column(String(16))
    cause: Mapped[int | None]
    ring_s: Mapped[float | None]  # the caller's wait, over every attempt
    talk_s: Mapped[float | None]
    # Why nobody answered: no_answer | queue_timeout | abandoned_ringing | abandoned_queue |
    # abandoned_early | busy (telephony.events.Unanswered).
    unanswered: Mapped[str | None] = mapped_column(String(24))
    queue: Mapped[str | None] = mapped_column(String(64))  # the queue the caller waited in
    caller_name: Mapped[str | None] = mapped_column(String(200))  # CallerIDName, a person's
    talk_by_agent: Mapped[dict[str, float] | None] = mapped_column(JsonType)  # ext -> seconds
    # The callback task this unanswered call opened or added to.
    callback_task_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL")
    )
    failure: Mapped[str | None] = mapped_column(String(32))
    communication_id: Mapped[int | None] = mapped_column(
        ForeignKey("communications.id", ondelete="SET NULL")
    )
    score: Mapped[dict[str, object] | None] = mapped_column(JsonType)  # supervisor's review
    result: Mapped[str | None] = mapped_column(String(24))  # what came of it (CallResult)

    __table_args__ = (
        Index("ix_calls_state", "state"),
        UniqueConstraint("pbx", "pbx_call_id", name="uq_calls_pbx_pbx_call_id"),
    )


@dataclass(slots=True, eq=False)
class CallRow:
    """A call's row as plain data: what the call-event service reads, changes and writes
    back with Core statements. Every call event reads and writes its call, and an ORM
    entity's instrumented attributes cost more CPU per event than the statements do."""

    pbx: str
    direction: str
    state: str
    started_at: datetime
    ringing: list[str]
    agents: list[str]
    id: int | None = None  # None until its INSERT
    pbx_call_id: str | None = None
    crm_call_id: str | None = None
    client_id: int | None = None
    user_id: int | None = None
    caller: str | None = None
    callee: str | None = None
    did: str | None = None
    answered_by: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disposition: str | None = None
    cause: int | None = None
    ring_s: float | None = None
    talk_s: float | None = None
    unanswered: str | None = None
    queue: str | None = None
    caller_name: str | None = None
    talk_by_agent: dict[str, float] | None = None
    callback_task_id: int | None = None
    failure: str | None = None
    communication_id: int | None = None
    score: dict[str, object] | None = None
    result: str | None = None


AnyCall = Call | CallRow  # the journal's entity or the call-event service's row


class CallParticipant(Base):
    """A user who talked on the call, as the PBX's extension belonged to them at the time:
    each agent of a transferred call keeps a row (and their talk), so each may listen."""

    __tablename__ = "call_participants"

    call_id: Mapped[int] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    extension: Mapped[str | None] = mapped_column(String(32))
    talk_s: Mapped[float | None]


# MixMonitor leaves a header-only WAV of this size for a call nobody answered.
EMPTY_WAV_BYTES = 44


def has_sound(size: int) -> bool:
    """The one rule for whether a recording file is worth offering and serving."""
    return size > EMPTY_WAV_BYTES


RecordingState = Literal["playable", "empty", "missing"]


def recording_state(recordings_dir: Path, file_name: str) -> RecordingState:
    """What the review can do with a recording: play it, or say why not (the PBX may not
    have written or copied the file yet, or nobody answered)."""
    try:
        size = (recordings_dir / file_name).stat().st_size
    except OSError:
        return "missing"
    return "playable" if has_sound(size) else "empty"


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    pbx_path: Mapped[str] = mapped_column(String(500))  # as the PBX wrote it
    file_name: Mapped[str] = mapped_column(String(255))  # inside CALLCARD_RECORDINGS_DIR
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_recordings_call_file", "call_id", "file_name", unique=True),)
